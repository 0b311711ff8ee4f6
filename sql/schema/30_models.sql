-- Generation models (text-to-video, image-to-video) offered to users.

CREATE TABLE models (
  "id" uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  "provider" text NOT NULL,
  "name" text NOT NULL,
  "enabled" boolean NOT NULL DEFAULT true,
  "createdAt" timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT "models_provider_name_key" UNIQUE ("provider", "name")
);

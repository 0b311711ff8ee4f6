-- The database as production holds it BEFORE this change (the starting point of the runbooks):
-- users still has purchased_credit_packs (snake_case), there are no export tables, no videos,
-- no creditTransactions, and pgcrypto is not enabled. gen_random_uuid() is built into
-- PostgreSQL 13 and later, so the defaults below work without pgcrypto.
--
-- Loaded with psql directly (not through pgconverge), so seed rows are fine here:
--   psql -X -v ON_ERROR_STOP=1 -1 -d <database> -f examples/old_schema.sql

CREATE TABLE "bazaar-vid_user" (
  "id" varchar(255) PRIMARY KEY,
  "name" varchar(255),
  "email" varchar(255) NOT NULL,
  "emailVerified" timestamptz,
  "image" varchar(255),
  "isAdmin" boolean NOT NULL DEFAULT false,
  CONSTRAINT "bazaar-vid_user_email_unique" UNIQUE ("email")
);

CREATE TABLE users (
  "id" uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  "email" text NOT NULL,
  "name" text,
  "purchased_credit_packs" integer NOT NULL DEFAULT 0,
  "createdAt" timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT "users_email_key" UNIQUE ("email")
);

CREATE TABLE "bazaar-vid_project" (
  "id" uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  "userId" varchar(255) NOT NULL,
  "title" varchar(255) NOT NULL,
  "props" jsonb NOT NULL DEFAULT '{}'::jsonb,
  "createdAt" timestamptz NOT NULL DEFAULT now(),
  "updatedAt" timestamptz,
  CONSTRAINT "bazaar-vid_project_userId_bazaar-vid_user_id_fk"
    FOREIGN KEY ("userId") REFERENCES "bazaar-vid_user" ("id") ON DELETE CASCADE
);

CREATE INDEX "project_user_idx" ON "bazaar-vid_project" ("userId");

CREATE TABLE models (
  "id" uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  "provider" text NOT NULL,
  "name" text NOT NULL,
  "enabled" boolean NOT NULL DEFAULT true,
  "createdAt" timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT "models_provider_name_key" UNIQUE ("provider", "name")
);

-- Seed data

INSERT INTO "bazaar-vid_user" ("id", "name", "email", "emailVerified", "isAdmin") VALUES
  ('usr_01HZXA7K3M', 'Ada Lovelace', 'ada@example.com', '2025-01-02 10:00:00+00', true),
  ('usr_01HZXA9Q2B', 'Grace Hopper', 'grace@example.com', NULL, false),
  ('usr_01HZXB1C4D', 'Linus Pauling', 'linus@example.com', '2025-03-14 08:30:00+00', false);

INSERT INTO "bazaar-vid_project" ("id", "userId", "title", "props", "createdAt") VALUES
  ('7d0f4a5e-2c1b-4b8e-9a51-0c6f3e2d9a10', 'usr_01HZXA7K3M', 'Launch teaser', '{"fps": 30, "width": 1920}', '2025-01-05 12:00:00+00'),
  ('b3e1c9d2-5f4a-4c7b-8e60-1d2f3a4b5c6d', 'usr_01HZXA7K3M', 'Changelog video', '{}', '2025-02-11 09:15:00+00'),
  ('e8a7b6c5-d4e3-4f2a-9b1c-0d9e8f7a6b5c', 'usr_01HZXA9Q2B', 'Conference intro', '{"fps": 24}', '2025-03-01 17:45:00+00');

INSERT INTO users ("id", "email", "name", "purchased_credit_packs", "createdAt") VALUES
  ('0b6f1a2c-3d4e-4f5a-8b9c-0d1e2f3a4b5c', 'ada@example.com', 'Ada Lovelace', 3, '2025-01-02 10:00:00+00'),
  ('1c7a2b3d-4e5f-4a6b-9c0d-1e2f3a4b5c6d', 'grace@example.com', 'Grace Hopper', 0, '2025-02-20 16:20:00+00'),
  ('2d8b3c4e-5f6a-4b7c-8d1e-2f3a4b5c6d7e', 'linus@example.com', NULL, 12, '2025-03-14 08:30:00+00');

INSERT INTO models ("id", "provider", "name", "enabled") VALUES
  ('a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d', 'fal', 'kling-video/v2/text-to-video', true),
  ('b2c3d4e5-f6a7-4b8c-9d0e-1f2a3b4c5d6e', 'fal', 'kling-video/v2/image-to-video', true),
  ('c3d4e5f6-a7b8-4c9d-8e1f-2a3b4c5d6e7f', 'fal', 'ltx-video', false);

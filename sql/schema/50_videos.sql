-- Video generation jobs (text-to-video, image-to-video): migration 20250626141646_add_video_generation.

CREATE TABLE videos (
  "id" uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  "userId" uuid NOT NULL,
  "modelId" uuid NOT NULL,
  "kind" text NOT NULL CHECK ("kind" IN ('text-to-video', 'image-to-video')),
  "prompt" text NOT NULL,
  "imageUrl" text,
  "status" text NOT NULL DEFAULT 'pending'
    CHECK ("status" IN ('pending', 'processing', 'completed', 'failed')),
  "videoUrl" text,
  "durationSeconds" integer CHECK ("durationSeconds" > 0),
  "creditsCharged" integer NOT NULL DEFAULT 0,
  "error" text,
  "metadata" jsonb,
  "createdAt" timestamptz NOT NULL DEFAULT now(),
  "updatedAt" timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT "videos_userId_fkey" FOREIGN KEY ("userId") REFERENCES users ("id") ON DELETE CASCADE,
  CONSTRAINT "videos_modelId_fkey" FOREIGN KEY ("modelId") REFERENCES models ("id") ON DELETE RESTRICT
);

CREATE INDEX "videos_userId_createdAt_idx" ON videos ("userId", "createdAt");
CREATE INDEX "videos_status_idx" ON videos ("status");

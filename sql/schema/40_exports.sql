-- Export tracking, exactly as the export tables runbook defines it
-- (runbook "Export Tables Migration Plan for Production", Option 1).

CREATE TABLE "bazaar-vid_exports" (
  "id" uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  "user_id" varchar(255) NOT NULL,
  "project_id" uuid NOT NULL,
  "render_id" text NOT NULL,
  "status" text DEFAULT 'pending' NOT NULL CHECK ("status" IN ('pending', 'rendering', 'completed', 'failed')),
  "progress" integer DEFAULT 0,
  "format" text DEFAULT 'mp4' NOT NULL CHECK ("format" IN ('mp4', 'webm', 'gif')),
  "quality" text DEFAULT 'high' NOT NULL CHECK ("quality" IN ('low', 'medium', 'high')),
  "output_url" text,
  "file_size" integer,
  "duration" integer,
  "error" text,
  "metadata" jsonb,
  "download_count" integer DEFAULT 0,
  "last_downloaded_at" timestamp,
  "created_at" timestamp DEFAULT now() NOT NULL,
  "completed_at" timestamp,
  CONSTRAINT "bazaar-vid_exports_render_id_unique" UNIQUE("render_id")
);

CREATE TABLE "bazaar-vid_export_analytics" (
  "id" uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  "export_id" uuid NOT NULL,
  "event" text NOT NULL CHECK ("event" IN ('started', 'progress', 'completed', 'failed', 'downloaded', 'viewed')),
  "event_data" jsonb,
  "user_agent" text,
  "ip_address" text,
  "created_at" timestamp DEFAULT now() NOT NULL
);

-- Foreign keys
ALTER TABLE "bazaar-vid_exports"
ADD CONSTRAINT "bazaar-vid_exports_user_id_bazaar-vid_user_id_fk"
FOREIGN KEY ("user_id") REFERENCES "bazaar-vid_user"("id") ON DELETE CASCADE;

ALTER TABLE "bazaar-vid_exports"
ADD CONSTRAINT "bazaar-vid_exports_project_id_bazaar-vid_project_id_fk"
FOREIGN KEY ("project_id") REFERENCES "bazaar-vid_project"("id") ON DELETE CASCADE;

ALTER TABLE "bazaar-vid_export_analytics"
ADD CONSTRAINT "bazaar-vid_export_analytics_export_id_bazaar-vid_exports_id_fk"
FOREIGN KEY ("export_id") REFERENCES "bazaar-vid_exports"("id") ON DELETE CASCADE;

-- Indexes
CREATE INDEX "exports_user_idx" ON "bazaar-vid_exports" ("user_id");
CREATE INDEX "exports_project_idx" ON "bazaar-vid_exports" ("project_id");
CREATE INDEX "exports_render_idx" ON "bazaar-vid_exports" ("render_id");
CREATE INDEX "exports_created_idx" ON "bazaar-vid_exports" ("created_at");

CREATE INDEX "export_analytics_export_idx" ON "bazaar-vid_export_analytics" ("export_id");
CREATE INDEX "export_analytics_event_idx" ON "bazaar-vid_export_analytics" ("event");
CREATE INDEX "export_analytics_created_idx" ON "bazaar-vid_export_analytics" ("created_at");

COMMENT ON TABLE "bazaar-vid_exports" IS 'One row per video export (render) a user started.';
COMMENT ON TABLE "bazaar-vid_export_analytics" IS 'Events of an export: progress, completion, downloads, views.';

-- Projects of NextAuth users.

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

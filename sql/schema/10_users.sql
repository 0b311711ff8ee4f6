-- Accounts. "bazaar-vid_user" is the NextAuth user table (string ids); users holds the
-- credit balance of the video feature.

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
  "purchasedCreditPacks" integer NOT NULL DEFAULT 0, -- @renamed-from purchased_credit_packs
  "createdAt" timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT "users_email_key" UNIQUE ("email")
);

COMMENT ON TABLE users IS 'Accounts of the video feature, with their credit balance.';
COMMENT ON COLUMN users."purchasedCreditPacks" IS 'Credit packs bought so far; renamed from purchased_credit_packs (camelCase, PR #11).';

-- Credit ledger: migration 20250607162550_add_credit_idempotency_constraints.
-- A retried request reuses its idempotency key, and the unique constraint turns the retry
-- into a duplicate-key error (the client answers 409) instead of a second charge.

CREATE TABLE "creditTransactions" (
  "id" uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  "userId" uuid NOT NULL,
  "kind" text NOT NULL
    CHECK ("kind" IN ('purchase', 'monthly_roll', 'video_charge', 'refund', 'adjustment')),
  "amount" integer NOT NULL,
  "idempotencyKey" text NOT NULL,
  "period" date,
  "videoId" uuid,
  "createdAt" timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT "creditTransactions_idempotencyKey_key" UNIQUE ("idempotencyKey"),
  CONSTRAINT "creditTransactions_monthly_roll_period_check"
    CHECK ("kind" <> 'monthly_roll' OR "period" IS NOT NULL),
  CONSTRAINT "creditTransactions_userId_fkey" FOREIGN KEY ("userId") REFERENCES users ("id") ON DELETE CASCADE,
  CONSTRAINT "creditTransactions_videoId_fkey" FOREIGN KEY ("videoId") REFERENCES videos ("id") ON DELETE SET NULL
);

-- At most one monthly credit roll per user and month, even when a retried job
-- comes with a fresh idempotency key.
CREATE UNIQUE INDEX "creditTransactions_userId_period_monthly_roll_key"
  ON "creditTransactions" ("userId", "period") WHERE "kind" = 'monthly_roll';

CREATE INDEX "creditTransactions_userId_createdAt_idx" ON "creditTransactions" ("userId", "createdAt");

COMMENT ON COLUMN "creditTransactions"."idempotencyKey" IS 'Client-chosen key: a retry with the same key is refused, not charged twice.';

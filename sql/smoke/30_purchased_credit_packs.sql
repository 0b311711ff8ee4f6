-- The credit-pack column was renamed (not dropped and re-added): the camelCase column is there,
-- NOT NULL, and the snake_case one is gone.
SELECT EXISTS (SELECT 1 FROM information_schema.columns
                WHERE table_schema = 'public' AND table_name = 'users'
                  AND column_name = 'purchasedCreditPacks' AND is_nullable = 'NO')
   AND NOT EXISTS (SELECT 1 FROM information_schema.columns
                    WHERE table_schema = 'public' AND table_name = 'users'
                      AND column_name = 'purchased_credit_packs');

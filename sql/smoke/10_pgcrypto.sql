-- pgcrypto is enabled, and gen_random_uuid() works (runbook: "function gen_random_uuid() does not exist").
SELECT gen_random_uuid() IS NOT NULL
   AND length(digest('pgconverge smoke check', 'sha256')) = 32;

-- Both export tables exist, and the status CHECK of the exports table is in place.
SELECT to_regclass('public."bazaar-vid_exports"') IS NOT NULL
   AND to_regclass('public."bazaar-vid_export_analytics"') IS NOT NULL
   AND EXISTS (
         SELECT 1
           FROM pg_catalog.pg_constraint c
          WHERE c.conrelid = to_regclass('public."bazaar-vid_exports"')
            AND c.contype = 'c'
            AND pg_catalog.pg_get_constraintdef(c.oid) LIKE '%status%pending%rendering%completed%failed%');

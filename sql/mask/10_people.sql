-- Masking for a staging refreshed from production (refresh.py): no real person's e-mail address
-- or name reaches staging. It runs in the refresh's transaction, right after the backup is
-- replayed: if it fails, the refresh is rolled back and staging stays as it was.
-- Addresses are derived from the row's id, so the UNIQUE constraints on email still hold.
UPDATE "bazaar-vid_user"
   SET email = 'user-' || md5(id) || '@example.invalid',
       name = 'User ' || left(md5(id), 8),
       image = NULL;

UPDATE users
   SET email = 'user-' || md5(id::text) || '@example.invalid',
       name = 'User ' || left(md5(id::text), 8);

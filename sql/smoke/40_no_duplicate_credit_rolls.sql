-- Must return no rows: a user got two monthly credit rolls for the same month.
SELECT "userId", "period", count(*) AS rolls
  FROM "creditTransactions"
 WHERE "kind" = 'monthly_roll'
 GROUP BY "userId", "period"
HAVING count(*) > 1;

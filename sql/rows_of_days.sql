-- The rows of a per-day dataset that fall on the given UTC days (one day partition). inputs: day_rows, days
select r.*
from day_rows r
where r.day in (select day from days)

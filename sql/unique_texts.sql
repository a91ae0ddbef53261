-- Each normalized text once: the unit of embedding (never per turn). input: day_texts (sql/day_texts.sql)
select distinct utt_norm from day_texts order by utt_norm

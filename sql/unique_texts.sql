-- Each normalized text once: the unit of embedding (never per turn). input: turn_friction
select distinct utt_norm from turn_friction order by utt_norm

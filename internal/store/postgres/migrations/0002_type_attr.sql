-- The Types filter (the console's histogram) matches on a 'ty:' entry of
-- attrs; rows written before it existed get theirs here.
UPDATE events SET attrs = attrs || ('ty:' || type)
WHERE NOT attrs @> ARRAY['ty:' || type];

"""The on-disk caches of frozen-encoder features and of video clips at input size.

`store` keeps one entry per key (data file, manifest written last, per-entry lock); `content` hashes
data files once and remembers the hash (`hashing`: the streaming sha256); `code` names the code and
library versions a result came from. `peftzoo_engine.feature_cache` and `peftzoo_engine.video_cache` build their
keys from these; `python -m recipes.cache` (`cli`) lists and clears the entries.
"""

"""Machine resources: usage statistics (:mod:`.stats`) and the capacity guard (:mod:`.guard`)."""

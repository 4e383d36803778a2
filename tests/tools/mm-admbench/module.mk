mm-admbench_MODULES := admission

mm-fpebench_MODULES := mask

mm-jsongen_MODULES := common

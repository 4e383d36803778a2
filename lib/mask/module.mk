mask_DEPS := policy common

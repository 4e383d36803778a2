admission_DEPS := policy common

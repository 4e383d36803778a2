common_DEPS :=

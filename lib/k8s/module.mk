k8s_DEPS := common

# Integration checks against the API stand-in: lib/k8s/integration/*.c, one binary each under
# $(BUILD)/tests/k8s/ named check_* (not test_*: the unit runner must not run them);
# tests/integration/test_k8s_client starts the stand-in and runs them.
K8S_CHECKS := $(patsubst lib/k8s/integration/%.c,$(BUILD)/tests/k8s/%,$(wildcard lib/k8s/integration/*.c))
$(BUILD)/tests/k8s/check_%: lib/k8s/integration/check_%.c $(BUILD)/lib/libmm_k8s.a $(BUILD)/lib/libmm_common.a
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(ALL_LDFLAGS) -o $@ $< -Wl,--start-group $(BUILD)/lib/libmm_k8s.a $(BUILD)/lib/libmm_common.a -Wl,--end-group $(PKG_LIBS) $(CMOCKA_LIBS)
units: $(K8S_CHECKS)

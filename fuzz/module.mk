# Modules each libFuzzer target links (fuzz/fuzz_<name>.c).
fuzz_policy_MODULES := policy
fuzz_mask_MODULES := mask
fuzz_admission_MODULES := admission

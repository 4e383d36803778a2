# Modules each libFuzzer target links (fuzz/fuzz_<name>.c).
fuzz_policy_MODULES := policy
fuzz_mask_MODULES := mask
fuzz_admission_MODULES := admission
fuzz_k8s_watch_MODULES := k8s
fuzz_k8s_kubeconfig_MODULES := k8s
fuzz_http_MODULES := proxy
fuzz_encrypt_MODULES := mask
fuzz_http_response_MODULES := proxy
fuzz_ws_MODULES := proxy
fuzz_pbdesc_MODULES := mask
fuzz_proto_MODULES := mask
fuzz_simd_MODULES := mask
fuzz_h2_MODULES := proxy
fuzz_prefilter_MODULES := mask

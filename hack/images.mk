# Container images, for the Makefile to include:   include hack/images.mk
#   make images                 build every image (hack/build-images.sh; needs a Docker engine)
#   make images-push            build and push
#   make image-list             print the image references
#   make images REGISTRY=r TAG=t   other names (make's command line overrides hack/images.env)
MM_IMAGES_DIR := $(dir $(lastword $(MAKEFILE_LIST)))
include $(MM_IMAGES_DIR)images.env
IMAGE_NAMES := $(CONTROLLER_IMAGE) $(WEBHOOK_IMAGE) $(PROXY_IMAGE) $(MASKCTL_IMAGE)
image_ref = $(REGISTRY)/$(1):$(TAG)

.PHONY: images images-push image-list
images:
	@REGISTRY=$(REGISTRY) TAG=$(TAG) $(MM_IMAGES_DIR)build-images.sh
images-push:
	@REGISTRY=$(REGISTRY) TAG=$(TAG) $(MM_IMAGES_DIR)build-images.sh --push
image-list:
	@$(foreach n,$(IMAGE_NAMES),echo $(call image_ref,$(n));)

/* maskmesh-proxy --wait-ready (waitready.c). */
#ifndef MASKMESH_PROXY_WAITREADY_H
#define MASKMESH_PROXY_WAITREADY_H
int proxy_wait_ready(int argc, char **argv);
#endif

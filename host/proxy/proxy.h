/* `kuasar-sandboxer proxy`: one sandbox's VM boot and data plane, a process of its own per
 * sandbox, started by the daemon (sandboxer/) and outliving it. */
#ifndef KUASAR_PROXY_H
#define KUASAR_PROXY_H

int proxy_main(int argc, char **argv);

#endif

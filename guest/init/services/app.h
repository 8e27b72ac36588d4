/* Appliances: the app a disk brings, run by the init at boot without the host. */
#ifndef KUASAR_APP_H
#define KUASAR_APP_H

#include "sandbox.pb.h"

/* Starts the app if a disk with the serial "kuasar-app" is attached; else does nothing. */
void app_boot(void);
/* The pod's resolv.conf as the app's /etc/resolv.conf (nothing without an app). */
void app_set_resolv(const char *text);
/* The app's state for Check (state NONE when this VM is not an appliance). */
void app_status(kuasar_sandbox_v1_AppStatus *out);

#endif

/* tools/train_unet.c - `reel train unet` (being written). */
#include "tools/train_stages.h"

rl_status rl_train_unet(const rl_train_opts *o, rl_err *err)
{
    (void)o;
    return rl_errf(err, RL_E_INTERNAL, "train unet: not implemented yet");
}

/* Per-VLAN sessions: see fp_vlan.h and l2tpv3/proto/vlan.py (the reference). */
#include "fp_vlan.h"

#include <string.h>

void fp_vlan_push(uint8_t *out, const uint8_t *f, size_t len, int vid)
{
    memcpy(out, f, 12);
    out[12] = (uint8_t)(FP_TPID_8021Q >> 8);
    out[13] = (uint8_t)(FP_TPID_8021Q & 0xff);
    out[14] = (uint8_t)((vid >> 8) & 0x0f);
    out[15] = (uint8_t)(vid & 0xff);
    memcpy(out + 16, f + 12, len - 12);
}

uint32_t fp_trunk_classify(struct fp_trunk *t, const uint8_t *f, size_t len)
{
    int vid = fp_vlan_outer_vid(f, len);
    if (vid < 0) {
        t->drops[FP_VLAN_UNTAGGED]++;
        return 0;
    }
    uint32_t sid = t->sid[vid];
    if (!sid) t->drops[FP_VLAN_UNMAPPED]++;
    return sid;
}

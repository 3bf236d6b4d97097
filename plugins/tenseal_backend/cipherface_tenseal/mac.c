/* The packed gallery's scan kernel for SEAL ciphertexts in NTT form: one block's d products with the
 * probe, accumulated in 128-bit integers and reduced once per 32 terms (SEAL reduces after every
 * product and allocates a ciphertext per product). Built by set-up (python -m cipherface_tenseal.kernel).
 */
#include <stdint.h>
#include <string.h>
typedef unsigned __int128 u128;
#define TILE 256
/* out (3 x k x n) = sum_t a[t] (x) b[t], each operand 2 x k x n residues (NTT form), mod q[j]. */
void cf_mac(int terms, const uint64_t *const *a, const uint64_t *const *b, int k, int n,
            const uint64_t *q, uint64_t *out) {
    u128 acc0[TILE], acc1[TILE], acc2[TILE];
    for (int j = 0; j < k; j++) {
        const uint64_t qj = q[j];
        for (int c0 = 0; c0 < n; c0 += TILE) {
            const int cn = (n - c0) < TILE ? (n - c0) : TILE;
            memset(acc0, 0, sizeof acc0); memset(acc1, 0, sizeof acc1); memset(acc2, 0, sizeof acc2);
            for (int t = 0; t < terms; t++) {
                const uint64_t *a0 = a[t] + (size_t)j * n + c0, *a1 = a[t] + (size_t)(k + j) * n + c0;
                const uint64_t *b0 = b[t] + (size_t)j * n + c0, *b1 = b[t] + (size_t)(k + j) * n + c0;
                for (int c = 0; c < cn; c++) {
                    acc0[c] += (u128)a0[c] * b0[c];
                    acc1[c] += (u128)a0[c] * b1[c] + (u128)a1[c] * b0[c];
                    acc2[c] += (u128)a1[c] * b1[c];
                }
                if ((t & 31) == 31) {
                    for (int c = 0; c < cn; c++) { acc0[c] %= qj; acc1[c] %= qj; acc2[c] %= qj; }
                }
            }
            uint64_t *o0 = out + (size_t)j * n + c0, *o1 = out + (size_t)(k + j) * n + c0;
            uint64_t *o2 = out + (size_t)(2 * k + j) * n + c0;
            for (int c = 0; c < cn; c++) {
                o0[c] = (uint64_t)(acc0[c] % qj); o1[c] = (uint64_t)(acc1[c] % qj); o2[c] = (uint64_t)(acc2[c] % qj);
            }
        }
    }
}

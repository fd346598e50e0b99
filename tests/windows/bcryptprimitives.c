/*
 * tests/windows/bcryptprimitives.c — a test fixture for running BucketFTP's Windows builds
 * under Wine 8.0. NEVER shipped.
 *
 * Rust's standard library for Windows takes its random bytes from ProcessPrng in
 * bcryptprimitives.dll, which every Windows 10/11 has and Wine 8.0 does not: without it a
 * Rust .exe dies while Windows loads it. scripts/test-windows.sh builds this file with MinGW
 * into a bcryptprimitives.dll placed beside the .exe under test, where the loader looks
 * first. It fills the buffer from advapi32's SystemFunction036 (RtlGenRandom), which Wine
 * has, in pieces its 32-bit length can express.
 */
#include <windows.h>

BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T length)
{
    while (length > 0) {
        ULONG piece = length > 0x40000000 ? 0x40000000 : (ULONG)length;
        if (!SystemFunction036(data, piece))
            return FALSE;
        data += piece;
        length -= piece;
    }
    return TRUE;
}

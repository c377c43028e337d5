/* A stand-in for bcryptprimitives.dll, which Windows 10 has and Wine 8.0 (Debian 12's) lacks:
 * Rust's standard library asks it for random bytes (ProcessPrng) before main, so without it no
 * Rust program starts under Wine 8. Only scripts/windows/test.sh builds it, into the Wine prefix
 * it tests in; nothing ships it. It draws from RtlGenRandom (advapi32's SystemFunction036), the
 * generator Rust used before ProcessPrng. Wine 9 and later carry their own. */
#include <windows.h>

BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T length)
{
    while (length > 0) {
        ULONG chunk = length > 0x40000000 ? 0x40000000 : (ULONG)length;
        if (!SystemFunction036(data, chunk))
            return FALSE;
        data += chunk;
        length -= chunk;
    }
    return TRUE;
}

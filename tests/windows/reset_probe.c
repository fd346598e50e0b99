/*
 * tests/windows/reset_probe.c — what a Windows program sees when the peer of a TCP connection
 * resets it (RST) after sending some bytes, compared with a clean close (FIN). Built with
 * MinGW by scripts/test-windows.sh and run under Wine; the Linux peer is in that script.
 *
 *   reset_probe.exe MODE
 *
 * Listens on 127.0.0.1 (an ephemeral port, printed as `port N`), accepts one connection and
 * reads it to its end in one of these ways:
 *   block  blocking recv() calls (a thread waiting in recv when the RST arrives);
 *   poll   non-blocking socket, WSAPoll() for readability before each recv() (what an event
 *          loop does);
 *   late   waits 1.5 s (the peer is done by then), then blocking recv() calls.
 * Then asks the socket what it knows: getpeername(), SO_ERROR, a zero-byte send().
 * Prints one line: `bytes N end EOF|error:CODE peer ok|error:CODE so_error CODE send0 ok|error:CODE`.
 */
#include <winsock2.h>
#include <ws2tcpip.h>
#include <stdio.h>
#include <string.h>

static int fail(const char *what)
{
    printf("fatal %s %d\n", what, WSAGetLastError());
    return 2;
}

int main(int argc, char **argv)
{
    WSADATA wsa;
    SOCKET listener, conn;
    struct sockaddr_in addr;
    int len = sizeof(addr);
    const char *mode = argc > 1 ? argv[1] : "block";
    static char buf[65536];
    long long total = 0;
    int end_error = 0, got;

    if (WSAStartup(MAKEWORD(2, 2), &wsa) != 0)
        return fail("WSAStartup");
    listener = socket(AF_INET, SOCK_STREAM, IPPROTO_TCP);
    if (listener == INVALID_SOCKET)
        return fail("socket");
    memset(&addr, 0, sizeof(addr));
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    if (bind(listener, (struct sockaddr *)&addr, sizeof(addr)) != 0)
        return fail("bind");
    if (listen(listener, 1) != 0)
        return fail("listen");
    if (getsockname(listener, (struct sockaddr *)&addr, &len) != 0)
        return fail("getsockname");
    printf("port %d\n", ntohs(addr.sin_port));
    fflush(stdout);

    conn = accept(listener, NULL, NULL);
    if (conn == INVALID_SOCKET)
        return fail("accept");

    if (strcmp(mode, "poll") == 0) {
        u_long on = 1;
        if (ioctlsocket(conn, FIONBIO, &on) != 0)
            return fail("FIONBIO");
    } else if (strcmp(mode, "late") == 0) {
        Sleep(1500);
    }

    for (;;) {
        if (strcmp(mode, "poll") == 0) {
            WSAPOLLFD pfd;
            pfd.fd = conn;
            pfd.events = POLLRDNORM;
            pfd.revents = 0;
            if (WSAPoll(&pfd, 1, 30000) < 0)
                return fail("WSAPoll");
        }
        got = recv(conn, buf, sizeof(buf), 0);
        if (got > 0) {
            total += got;
            continue;
        }
        if (got == 0)
            break;
        end_error = WSAGetLastError();
        if (end_error == WSAEWOULDBLOCK) {
            end_error = 0;
            continue;
        }
        break;
    }

    printf("bytes %lld end ", total);
    if (end_error)
        printf("error:%d", end_error);
    else
        printf("EOF");

    {
        struct sockaddr_in peer;
        int plen = sizeof(peer);
        if (getpeername(conn, (struct sockaddr *)&peer, &plen) == 0)
            printf(" peer ok");
        else
            printf(" peer error:%d", WSAGetLastError());
    }
    {
        int so_error = 0, olen = sizeof(so_error);
        if (getsockopt(conn, SOL_SOCKET, SO_ERROR, (char *)&so_error, &olen) != 0)
            so_error = -WSAGetLastError();
        printf(" so_error %d", so_error);
    }
    if (send(conn, buf, 0, 0) == 0)
        printf(" send0 ok");
    else
        printf(" send0 error:%d", WSAGetLastError());
    printf("\n");
    fflush(stdout);
    closesocket(conn);
    closesocket(listener);
    WSACleanup();
    return 0;
}

/* tests/windows/window_standin.c: a stand-in for the window process of bucketftp.exe under Wine,
 * a test fixture that is never shipped.
 *
 * The tray app starts its window as a child process and talks to it in JSON lines over the
 * child's standard input and output (src-tauri/src/window_proc). The real window needs WebView2,
 * which Wine lacks; with BUCKETFTP_WINDOW_PROGRAM naming this program, the tray starts it instead
 * ("Open window", or a second launch). It connects to 127.0.0.1:BUCKETFTP_STANDIN_PORT, where the
 * test (tests/windows/windows_test.py) listens, and joins the two: the tray's lines go to the
 * test, the test's lines (calls of the command table, as the page makes them) go to the tray. So
 * the test drives the tray exactly as the window process does. It ends when either side closes.
 *
 * Build: x86_64-w64-mingw32-gcc -O2 -Wall -o window_standin.exe window_standin.c -lws2_32
 */
#include <winsock2.h>
#include <windows.h>
#include <stdio.h>
#include <stdlib.h>

static SOCKET sock = INVALID_SOCKET;

/* The tray's lines (our standard input) to the test. */
static DWORD WINAPI tray_to_test(LPVOID unused) {
    HANDLE in = GetStdHandle(STD_INPUT_HANDLE);
    char buf[65536];
    DWORD got;
    (void)unused;
    while (ReadFile(in, buf, sizeof buf, &got, NULL) && got > 0) {
        DWORD off = 0;
        while (off < got) {
            int sent = send(sock, buf + off, (int)(got - off), 0);
            if (sent <= 0)
                ExitProcess(3);
            off += (DWORD)sent;
        }
    }
    /* The tray closed our input: it quit, or closed the window. */
    shutdown(sock, SD_SEND);
    ExitProcess(0);
    return 0;
}

int main(void) {
    const char *port = getenv("BUCKETFTP_STANDIN_PORT");
    WSADATA wsa;
    struct sockaddr_in addr;
    HANDLE out = GetStdHandle(STD_OUTPUT_HANDLE);
    char buf[65536];
    int got;

    if (!port || !*port) {
        fprintf(stderr, "window_standin: BUCKETFTP_STANDIN_PORT is not set\n");
        return 2;
    }
    if (WSAStartup(MAKEWORD(2, 2), &wsa) != 0)
        return 2;
    sock = socket(AF_INET, SOCK_STREAM, IPPROTO_TCP);
    if (sock == INVALID_SOCKET)
        return 2;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_port = htons((unsigned short)atoi(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(sock, (struct sockaddr *)&addr, sizeof addr) != 0) {
        fprintf(stderr, "window_standin: cannot connect to 127.0.0.1:%s (%d)\n", port, WSAGetLastError());
        return 2;
    }
    if (!CreateThread(NULL, 0, tray_to_test, NULL, 0, NULL))
        return 2;
    /* The test's lines to the tray (our standard output). */
    while ((got = recv(sock, buf, sizeof buf, 0)) > 0) {
        DWORD off = 0, wrote;
        while (off < (DWORD)got) {
            if (!WriteFile(out, buf + off, (DWORD)got - off, &wrote, NULL))
                return 3;
            off += wrote;
        }
    }
    /* The test closed: so does the window. */
    return 0;
}

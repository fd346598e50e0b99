#!/usr/bin/env python3
"""bench/smallfiles.py — small-file transfers for bench/throughput.sh and bench/mirror.sh
(run in .venv-test's python: the s3 client needs boto3).

    smallfiles.py ftp|ftps PORT NETRC upload|download DIR PREFIX
        logs in to the FTP server on 127.0.0.1:PORT with NETRC's login for 127.0.0.1 (ftps:
        AUTH TLS, PROT P; the server's certificate is not verified: the gateway's is
        self-signed), then uploads every file of DIR, one after another over this one session,
        as PREFIX + its name in the login folder (STOR), or downloads each of them (RETR) and
        compares it with DIR's file. Data connections are passive; over FTPS each resumes the
        control connection's TLS session when the server allows it, as FileZilla's do.
        Prints "SECONDS CLIENT_CPU_SECONDS RESUMED": the wall and CPU time from the first
        transfer to the last one's reply (after login, before QUIT: interpreter start-up and
        login are not counted), and how many FTPS data connections resumed the session.
    smallfiles.py s3 upload|download DIR PREFIX
        the same with boto3 PutObject / GetObject, one after another on one client (its
        connection warmed up before the clock starts).
    smallfiles.py s3 count PREFIX     prints how many objects (not folder markers) PREFIX holds
    smallfiles.py s3 delete PREFIX    deletes every object under PREFIX

The s3 modes read S3_ENDPOINT S3_REGION S3_ACCESS_KEY S3_SECRET_KEY S3_BUCKET from the
environment. Any failure, or a download that differs, exits non-zero.
"""

import ftplib
import io
import netrc
import os
import ssl
import sys
import time


class ResumingFTP_TLS(ftplib.FTP_TLS):
    """ftplib's FTP_TLS, whose data connections resume the control connection's TLS session
    (ftplib's own start a new session each time)."""

    resumed = 0

    def ntransfercmd(self, cmd, rest=None):
        conn, size = ftplib.FTP.ntransfercmd(self, cmd, rest)
        if self._prot_p:
            conn = self.context.wrap_socket(conn, server_hostname=self.host, session=self.sock.session)
            self.resumed += conn.session_reused
        return conn, size


def read_files(d):
    names = sorted(n for n in os.listdir(d) if os.path.isfile(os.path.join(d, n)))
    files = []
    for n in names:
        with open(os.path.join(d, n), "rb") as f:
            files.append((n, f.read()))
    return files


def s3_client():
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=os.environ["S3_ENDPOINT"],
        region_name=os.environ["S3_REGION"],
        aws_access_key_id=os.environ["S3_ACCESS_KEY"],
        aws_secret_access_key=os.environ["S3_SECRET_KEY"],
        config=Config(
            s3={"addressing_style": "path"},
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
            retries={"max_attempts": 1},
        ),
    )


def s3_keys(s3, bucket, prefix):
    keys = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys += [o["Key"] for o in page.get("Contents", [])]
    return keys


def ftp_run(tls, port, netrc_file, op, d, prefix):
    files = read_files(d)
    user, _, password = netrc.netrc(netrc_file).authenticators("127.0.0.1")
    if tls:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE  # the gateway's certificate is self-signed
        ftp = ResumingFTP_TLS(context=ctx, timeout=60)
    else:
        ftp = ftplib.FTP(timeout=60)
    ftp.connect("127.0.0.1", port)
    ftp.login(user, password)  # FTP_TLS: AUTH TLS first
    if tls:
        ftp.prot_p()
    bad = []
    t0, c0 = time.monotonic(), time.process_time()
    if op == "upload":
        for name, data in files:
            ftp.storbinary(f"STOR {prefix}{name}", io.BytesIO(data))
    else:
        for name, data in files:
            chunks = []
            ftp.retrbinary(f"RETR {prefix}{name}", chunks.append)
            if b"".join(chunks) != data:
                bad.append(name)
    secs, cpu = time.monotonic() - t0, time.process_time() - c0
    ftp.quit()
    if bad:
        sys.exit(f"{len(bad)} downloads differ from the upload, e.g. {prefix}{bad[0]}")
    print(f"{secs:.6f} {cpu:.3f} {getattr(ftp, 'resumed', 0)}")


def s3_run(op, d, prefix):
    bucket = os.environ["S3_BUCKET"]
    s3 = s3_client()
    s3.list_objects_v2(Bucket=bucket, MaxKeys=1)  # connect and warm up outside the timed part
    files = read_files(d)
    bad = []
    t0, c0 = time.monotonic(), time.process_time()
    if op == "upload":
        for name, data in files:
            s3.put_object(Bucket=bucket, Key=prefix + name, Body=data)
    else:
        for name, data in files:
            if s3.get_object(Bucket=bucket, Key=prefix + name)["Body"].read() != data:
                bad.append(name)
    secs, cpu = time.monotonic() - t0, time.process_time() - c0
    if bad:
        sys.exit(f"{len(bad)} downloads differ from the upload, e.g. {prefix}{bad[0]}")
    print(f"{secs:.6f} {cpu:.3f} 0")


def main(argv):
    mode = argv[1] if len(argv) > 1 else ""
    if mode in ("ftp", "ftps") and len(argv) == 7 and argv[4] in ("upload", "download"):
        ftp_run(mode == "ftps", int(argv[2]), argv[3], argv[4], argv[5], argv[6])
    elif mode == "s3" and len(argv) == 5 and argv[2] in ("upload", "download"):
        s3_run(argv[2], argv[3], argv[4])
    elif mode == "s3" and len(argv) == 4 and argv[2] in ("count", "delete"):
        s3 = s3_client()
        bucket = os.environ["S3_BUCKET"]
        keys = s3_keys(s3, bucket, argv[3])
        if argv[2] == "count":
            print(sum(1 for k in keys if not k.endswith("/")))
        else:
            for k in keys:
                s3.delete_object(Bucket=bucket, Key=k)
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)

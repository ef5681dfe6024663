#!/usr/bin/python3
"""Packet-logging TCP proxy for libvirt RPC: logs every packet's header.

usage: proxy.py LISTEN_PORT TARGET_PORT LOGFILE
Each line: wall time, conn number, direction (C>S / S>C), prog, vers,
proc, type, serial, status, length.
"""
import socket, struct, sys, threading, time

listen_port, target_port, logpath = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
log = open(logpath, 'a', buffering=1)
lock = threading.Lock()
TYPES = {0: 'CALL', 1: 'REPLY', 2: 'MESSAGE', 3: 'STREAM', 4: 'CALL_FDS', 5: 'REPLY_FDS', 6: 'HOLE'}

def pump(src, dst, conn, direction):
    buf = b''
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            # log complete packets seen so far, before forwarding them
            buf += data
            while len(buf) >= 28:
                (length,) = struct.unpack('>I', buf[:4])
                prog, vers, proc, typ, serial, status = struct.unpack('>IIiiIi', buf[4:28])
                with lock:
                    log.write('%.6f c%d %s prog=%#x v=%d proc=%d %s serial=%d status=%d len=%d\n' % (
                        time.time(), conn, direction, prog, vers, proc, TYPES.get(typ, typ), serial, status, length))
                if len(buf) >= length:
                    buf = buf[length:]
                else:
                    # skip the rest of a long packet as it arrives
                    need = length - len(buf)
                    dst.sendall(data)
                    data = b''
                    while need > 0:
                        more = src.recv(min(65536, need))
                        if not more:
                            raise EOFError
                        dst.sendall(more)
                        need -= len(more)
                    buf = b''
                    break
            if data:
                dst.sendall(data)
    except Exception as e:
        with lock:
            log.write('%.6f c%d %s closed: %r\n' % (time.time(), conn, direction, e))
    finally:
        try:
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass

srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(('127.0.0.1', listen_port))
srv.listen(64)
n = 0
while True:
    c, _ = srv.accept()
    n += 1
    s = socket.create_connection(('127.0.0.1', target_port))
    for sock in (c, s):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    with lock:
        log.write('%.6f c%d open\n' % (time.time(), n))
    threading.Thread(target=pump, args=(c, s, n, 'C>S'), daemon=True).start()
    threading.Thread(target=pump, args=(s, c, n, 'S>C'), daemon=True).start()

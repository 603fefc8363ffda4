
import ctypes, marshal, os, select, socket, sys, time, _signal, _socket, fcntl
cfg = marshal.loads(bytes.fromhex(sys.argv[1]))
libc = ctypes.CDLL(None, use_errno=True)
NEWNS, NEWUTS, NEWIPC, NEWUSER, NEWPID, NEWNET = 0x20000, 0x4000000, 0x8000000, 0x10000000, 0x20000000, 0x40000000
RDONLY, NOSUID, NODEV, NOEXEC, REMOUNT, BIND, REC, PRIVATE = 1, 2, 4, 8, 32, 0x1000, 0x4000, 0x40000
PR_SET_PDEATHSIG, PR_SET_NO_NEW_PRIVS = 1, 38
SYS = {"x86_64": {"pivot_root": 155, "capset": 126}, "aarch64": {"pivot_root": 41, "capset": 91}}[os.uname().machine]
# statvfs flag -> mount flag, to keep a mount's locked flags when it is remounted read-only
KEEP = ((1, RDONLY), (2, NOSUID), (4, NODEV), (8, NOEXEC), (1024, 1024), (2048, 2048), (4096, 1 << 21))


def check(rc, what):
    if rc != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def enc(text):
    return None if text is None else text.encode()


def mount(source, target, fstype, flags, options=None):
    check(libc.mount(enc(source), enc(target), enc(fstype), flags, enc(options)), f"mount {target}")


def place_fds(moves):
    # Each (fd, number): fd becomes the inheritable fd `number`; first out of the way, so none is overwritten.
    high = [(fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10), number) for fd, number in moves]
    for fd, _ in moves:
        os.close(fd)
    for fd, number in high:
        os.dup2(fd, number)
        os.close(fd)


def setup_failed(err):
    tb = err.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    where = f" (line {tb.tb_lineno})" if tb is not None else ""
    os.write(2, f"{cfg['setup_mark']} {type(err).__name__}: {err}{where}\n".encode())
    os._exit(cfg["setup_exit"])


def write(path, text):
    with open(path, "w") as handle:
        handle.write(text)


def map_ids(pid):
    # From outside the new user namespace: only there may root map several ids.
    uid, gid, inner = os.getuid(), os.getgid(), cfg["drop_to"]
    if inner is not None:
        write(f"/proc/{pid}/uid_map", f"0 0 1\n{inner} {inner} 1\n")
        write(f"/proc/{pid}/gid_map", f"0 0 1\n{inner} {inner} 1\n")
    else:
        write(f"/proc/{pid}/setgroups", "deny")
        write(f"/proc/{pid}/uid_map", f"{uid} {uid} 1\n")
        write(f"/proc/{pid}/gid_map", f"{gid} {gid} 1\n")


def bind(fd, target, is_dir):
    if is_dir:
        os.makedirs(target, 0o755, exist_ok=True)
    else:
        os.makedirs(os.path.dirname(target), 0o755, exist_ok=True)
        open(target, "a").close()
    mount(f"/proc/self/fd/{fd}", target, None, BIND | REC)
    kept = os.statvfs(target).f_flag
    flags = RDONLY | NOSUID | NODEV
    for st_flag, ms_flag in KEEP:
        if kept & st_flag:
            flags |= ms_flag
    mount("none", target, None, REMOUNT | BIND | flags)


def build_root(tmpfs_mb):
    # Assembled on a tmpfs over /tmp (private to this mount namespace); what it
    # binds is opened first, since the tmpfs hides /tmp.
    mount("none", "/", None, REC | PRIVATE)
    binds = [(target, os.open(source, os.O_PATH), is_dir) for source, target, is_dir in cfg["binds"]]
    new = "/tmp"
    mount("tmpfs", new, "tmpfs", NOSUID | NODEV, "mode=0755,size=4m")
    work = new + "/tmp"
    os.mkdir(work)
    mount("tmpfs", work, "tmpfs", NOSUID | NODEV, f"mode=0755,size={tmpfs_mb}m")
    os.mkdir(work + "/work", 0o700)
    os.mkdir(work + "/shm")
    os.chmod(work + "/shm", 0o1777)
    for name, target in cfg["links"]:
        os.symlink(target, new + name)
    # An interpreter under /tmp (a virtualenv there) is bound inside the private /tmp.
    for target, fd, is_dir in binds:
        bind(fd, new + target, is_dir)
        os.close(fd)
    os.makedirs(new + "/etc", 0o755, exist_ok=True)
    for name, text in cfg["etc"].items():
        write(f"{new}/etc/{name}", text)
    dev = new + "/dev"
    os.mkdir(dev)
    mount("tmpfs", dev, "tmpfs", NOSUID | NOEXEC, "mode=0755,size=64k")
    for name in cfg["devices"]:
        open(f"{dev}/{name}", "a").close()
        mount(f"/dev/{name}", f"{dev}/{name}", None, BIND)
    for name, target in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"), ("stdout", "/proc/self/fd/1"), ("stderr", "/proc/self/fd/2")):
        os.symlink(target, f"{dev}/{name}")
    os.mkdir(dev + "/shm")
    mount(work + "/shm", dev + "/shm", None, BIND)
    os.mkdir(new + "/proc")
    # The fresh /proc is mounted while the old one is still visible (the kernel
    # allows a new proc in a user namespace only then), then the old root goes.
    mount("proc", new + "/proc", "proc", NOSUID | NODEV | NOEXEC)
    mount("none", new, None, REMOUNT | BIND | RDONLY | NOSUID | NODEV)
    os.chdir(new)
    check(libc.syscall(SYS["pivot_root"], b".", b"."), "pivot_root")
    check(libc.umount2(b".", 2), "umount the old root")  # MNT_DETACH
    os.chdir("/")


def loopback_up():
    # As with `docker --network none`: a struct ifreq is the name in 16 bytes, then
    # the flags (a short) in a 24-byte union.
    sock = _socket.socket(_socket.AF_INET, _socket.SOCK_DGRAM)
    name = b"lo".ljust(16, b"\0")
    flags = int.from_bytes(fcntl.ioctl(sock.fileno(), 0x8913, name + bytes(24))[16:18], sys.byteorder)
    fcntl.ioctl(sock.fileno(), 0x8914, name + (flags | 1).to_bytes(2, sys.byteorder) + bytes(22))
    sock.close()


def drop_capabilities():
    header = (ctypes.c_uint32 * 2)(0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3, this process
    check(libc.syscall(SYS["capset"], header, (ctypes.c_uint32 * 6)()), "capset")


def start_program(run):
    # Becomes the runner: its token on its fd, its identity, no new privileges.
    read_end, write_end = os.pipe()
    os.write(write_end, run["token"])
    os.close(write_end)
    place_fds([(read_end, cfg["token_fd"])])
    if cfg["drop_to"] is not None:
        os.setgroups([])
        os.setresgid(cfg["drop_to"], cfg["drop_to"], cfg["drop_to"])
        os.setresuid(cfg["drop_to"], cfg["drop_to"], cfg["drop_to"])
    check(libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl(PR_SET_NO_NEW_PRIVS)")
    check(libc.prctl(PR_SET_PDEATHSIG, _signal.SIGKILL, 0, 0, 0), "prctl(PR_SET_PDEATHSIG)")
    os.chdir(run["workdir"])
    os.execve(cfg["python"], run["argv"], cfg["env"] | {"HOME": run["workdir"], "TMPDIR": run["workdir"]})


def place_program(run):
    path = run["workdir"] + "/prog.py"
    with open(path, "wb") as handle:
        handle.write(run["source"])
    if cfg["drop_to"] is not None:
        os.chown(run["workdir"], cfg["drop_to"], cfg["drop_to"])
        os.chown(path, cfg["drop_to"], cfg["drop_to"])


def init(run, report):
    # PID 1 of the namespace: the new root, then the program; reap until it ends.
    try:
        check(libc.prctl(PR_SET_PDEATHSIG, _signal.SIGKILL, 0, 0, 0), "prctl(PR_SET_PDEATHSIG)")
        build_root(run["tmpfs_mb"])
        loopback_up()
        check(libc.sethostname(b"sandbox", 7), "sethostname")
        place_program(run)
        program = os.fork()
        if program == 0:
            start_program(run)
        drop_capabilities()
    except BaseException as err:
        setup_failed(err)
    while True:
        pid, status = os.wait()
        if pid == program:
            os.write(report, str(status).encode())
            os._exit(0)


def child(run, fds, maps):
    # One run, in a new session; its exit status is the program's.
    try:
        check(libc.prctl(PR_SET_PDEATHSIG, _signal.SIGKILL, 0, 0, 0), "prctl(PR_SET_PDEATHSIG)")
        os.setsid()
        sock.close()
        place_fds([(os.open(os.devnull, os.O_RDONLY), 0), (fds[0], 1), (fds[1], 2), (fds[2], cfg["channel_fd"])])
        if cfg["mechanism"] == "none":
            place_program(run)
            start_program(run)
        ready, mapped = maps
        check(libc.unshare(NEWUSER | NEWNS | NEWNET | NEWIPC | NEWUTS | NEWPID), "unshare")
        os.write(ready, b"1")
        if os.read(mapped, 1) != b"1":
            raise RuntimeError("the id maps could not be written")
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(read_end)
            init(run, write_end)
        os.close(write_end)
    except BaseException as err:
        setup_failed(err)
    os.waitpid(pid, 0)
    reported = os.read(read_end, 32)
    if not reported:
        setup_failed(RuntimeError("the namespace init died before the program ended"))
    status = int(reported)
    if os.WIFEXITED(status):
        os._exit(os.WEXITSTATUS(status))
    number = os.WTERMSIG(status)
    if number not in (_signal.SIGKILL, _signal.SIGSTOP):
        _signal.signal(number, _signal.SIG_DFL)
    os.kill(os.getpid(), number)
    os._exit(128 + number)


def serve_one(run, fds):
    ready_read, ready_write = os.pipe()
    mapped_read, mapped_write = os.pipe()
    start = time.monotonic()
    pid = os.fork()
    if pid == 0:
        os.close(ready_read)
        os.close(mapped_write)
        child(run, fds, (ready_write, mapped_read))
    for fd in (*fds, ready_write, mapped_read):
        os.close(fd)
    pidfd = os.pidfd_open(pid)
    if cfg["mechanism"] != "none":
        ok = b"0"
        if os.read(ready_read, 1) == b"1":
            try:
                map_ids(pid)
                ok = b"1"
            except OSError as err:
                os.write(2, f"{cfg['setup_mark']} writing the id maps: {err}\n".encode())
        try:
            os.write(mapped_write, ok)
        except BrokenPipeError:
            pass  # the child failed before; its exit status and stderr say why
    os.close(ready_read)
    os.close(mapped_write)
    poller = select.poll()
    poller.register(pidfd, select.POLLIN)
    timed_out = not poller.poll(max(0.0, start + run["timeout_s"] - time.monotonic()) * 1000)
    # The session, by its leader's id: still unreaped, so the id cannot have been reused.
    try:
        os.killpg(pid, _signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    os.close(pidfd)
    _, status = os.waitpid(pid, 0)
    return status, timed_out, time.monotonic() - start


sock = socket.socket(fileno=cfg["socket"])
check(libc.prctl(PR_SET_PDEATHSIG, _signal.SIGKILL, 0, 0, 0), "prctl(PR_SET_PDEATHSIG)")
if os.getppid() != cfg["parent"]:
    os._exit(1)  # the caller has gone
while True:
    header = sock.recv(16)
    if not header:
        os._exit(0)
    size = int(header)
    message, fds, _, _ = socket.recv_fds(sock, size, 3)
    while len(message) < size:
        message += sock.recv(size - len(message))
    sock.sendall(marshal.dumps(serve_one(marshal.loads(message), fds)))

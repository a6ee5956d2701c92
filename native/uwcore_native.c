// uwcore's optional native helper for sdk/socket (built by `npm install` with node-gyp; everything works
// without it, slower). Two things node's public API cannot do:
//   1. socket options node does not expose (TCP_DEFER_ACCEPT, as uWSGI sets on its sockets);
//   2. an accept loop for one-request connections: accept4(2) and the first read(2) here, one call into
//      JavaScript per batch of connections, and plain write(2)/close(2) on the descriptor. A connection
//      that needs more (a body still coming, a slow or async response) is handed to libuv by JavaScript
//      (`TCP.open(fd)`), and from then on it is an ordinary node stream handle.
// No state is kept per connection here: a descriptor is a number JavaScript owns until it closes it.
#define _GNU_SOURCE
#include <node_api.h>
#include <uv.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#define STACK_STR 16384
#define MAX_IOV 64

static napi_value num(napi_env env, double v) {
  napi_value r;
  napi_create_double(env, v, &r);
  return r;
}

static int arg_int(napi_env env, napi_value v, int32_t* out) {
  return napi_get_value_int32(env, v, out) == napi_ok;
}

static napi_value type_error(napi_env env, const char* msg) {
  napi_throw_type_error(env, "UW_ERR_NATIVE", msg);
  return NULL;
}

// The arguments of a call whose first one is a descriptor (at most `cap`, at least `min`); 0 with a TypeError
// thrown when they are missing.
static int fd_args(napi_env env, napi_callback_info info, size_t cap, size_t min, napi_value* argv, int32_t* fd, const char* usage) {
  size_t argc = cap;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  for (size_t i = argc; i < cap; i++) napi_get_undefined(env, &argv[i]);
  if (argc < min || !arg_int(env, argv[0], fd)) { type_error(env, usage); return 0; }
  return 1;
}

// the bytes of a Uint8Array (a Buffer); other typed arrays are refused (their length counts elements)
static int bytes_of(napi_env env, napi_value v, void** data, size_t* len) {
  napi_typedarray_type tt;
  napi_value ab;
  size_t off;
  return napi_get_typedarray_info(env, v, &tt, len, data, &ab, &off) == napi_ok
    && (tt == napi_uint8_array || tt == napi_int8_array || tt == napi_uint8_clamped_array);
}

// setIntOpt(fd, level, name, value) -> 0 | -errno
static napi_value SetIntOpt(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  int32_t a[4];
  if (!fd_args(env, info, 4, 4, argv, &a[0], "setIntOpt(fd, level, name, value)")) return NULL;
  for (int i = 1; i < 4; i++) if (!arg_int(env, argv[i], &a[i])) return type_error(env, "setIntOpt: integers expected");
  int v = a[3];
  return num(env, setsockopt(a[0], a[1], a[2], &v, sizeof v) == 0 ? 0 : -errno);
}

// write(fd, data, utf8) -> bytes written | -errno. data: a Buffer/Uint8Array, or a string (latin1, or
// utf8 when the third argument is true). A short write is the caller's to finish.
static napi_value Write(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  int32_t fd;
  if (!fd_args(env, info, 3, 2, argv, &fd, "write(fd, data, utf8)")) return NULL;
  napi_valuetype t;
  napi_typeof(env, argv[1], &t);
  ssize_t n;
  if (t == napi_string) {
    bool utf8 = false;
    napi_get_value_bool(env, argv[2], &utf8);
    size_t len = 0;
    if (utf8) napi_get_value_string_utf8(env, argv[1], NULL, 0, &len);
    else napi_get_value_string_latin1(env, argv[1], NULL, 0, &len);
    char stack[STACK_STR];
    char* p = len < STACK_STR ? stack : malloc(len + 1);
    if (p == NULL) return num(env, -ENOMEM);
    size_t got = 0;
    if (utf8) napi_get_value_string_utf8(env, argv[1], p, len + 1, &got);
    else napi_get_value_string_latin1(env, argv[1], p, len + 1, &got);
    do n = write(fd, p, got); while (n < 0 && errno == EINTR);
    int e = errno;
    if (p != stack) free(p);
    return num(env, n >= 0 ? (double)n : -e);
  }
  void* data;
  size_t len;
  if (!bytes_of(env, argv[1], &data, &len)) return type_error(env, "write: a Uint8Array or a string expected");
  do n = write(fd, data, len); while (n < 0 && errno == EINTR);
  return num(env, n >= 0 ? (double)n : -errno);
}

// writev(fd, chunks: Uint8Array[]) -> bytes written | -errno (at most 64 chunks)
static napi_value Writev(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  int32_t fd;
  if (!fd_args(env, info, 2, 2, argv, &fd, "writev(fd, chunks)")) return NULL;
  uint32_t count = 0;
  if (napi_get_array_length(env, argv[1], &count) != napi_ok || count > MAX_IOV) return type_error(env, "writev: an array of at most 64 chunks expected");
  struct iovec iov[MAX_IOV];
  for (uint32_t i = 0; i < count; i++) {
    napi_value el;
    napi_get_element(env, argv[1], i, &el);
    if (!bytes_of(env, el, &iov[i].iov_base, &iov[i].iov_len)) return type_error(env, "writev: Uint8Array chunks expected");
  }
  ssize_t n;
  do n = writev(fd, iov, (int)count); while (n < 0 && errno == EINTR);
  return num(env, n >= 0 ? (double)n : -errno);
}

// close(fd) -> 0 | -errno
static napi_value Close(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int32_t fd;
  if (!fd_args(env, info, 1, 1, argv, &fd, "close(fd)")) return NULL;
  return num(env, close(fd) == 0 ? 0 : -errno);
}

// name(fd, peer, out) -> 0 | -errno; sets out.address, out.port, out.family for IPv4/IPv6 (nothing for UNIX)
static napi_value Name(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  int32_t fd;
  bool peer = false;
  if (!fd_args(env, info, 3, 3, argv, &fd, "name(fd, peer, out)")) return NULL;
  napi_get_value_bool(env, argv[1], &peer);
  struct sockaddr_storage ss;
  socklen_t len = sizeof ss;
  int r = peer ? getpeername(fd, (struct sockaddr*)&ss, &len) : getsockname(fd, (struct sockaddr*)&ss, &len);
  if (r != 0) return num(env, -errno);
  char buf[INET6_ADDRSTRLEN];
  int port;
  const char* family;
  if (ss.ss_family == AF_INET) {
    struct sockaddr_in* a = (struct sockaddr_in*)&ss;
    inet_ntop(AF_INET, &a->sin_addr, buf, sizeof buf);
    port = ntohs(a->sin_port);
    family = "IPv4";
  } else if (ss.ss_family == AF_INET6) {
    struct sockaddr_in6* a = (struct sockaddr_in6*)&ss;
    inet_ntop(AF_INET6, &a->sin6_addr, buf, sizeof buf);
    port = ntohs(a->sin6_port);
    family = "IPv6";
  } else {
    return num(env, 0);
  }
  napi_value v;
  napi_create_string_latin1(env, buf, NAPI_AUTO_LENGTH, &v);
  napi_set_named_property(env, argv[2], "address", v);
  napi_set_named_property(env, argv[2], "port", num(env, port));
  napi_create_string_latin1(env, family, NAPI_AUTO_LENGTH, &v);
  napi_set_named_property(env, argv[2], "family", v);
  return num(env, 0);
}

// ---------------------------------------------------------------------------------------------------------
// the acceptor: a uv_poll on a duplicate of a listening socket

// meta (an Int32Array shared with JavaScript): [0] the slab offset the next read goes to (JavaScript sets it
// back to 0 when it hands over a new slab), [1] connections in this batch, then per connection: the
// descriptor, the offset of its first bytes in the slab, their length (0: the peer closed; -errno: nothing
// read, -EAGAIN when nothing had arrived yet).
#define META_HEAD 2
#define READ_MAX 16384

typedef struct {
  uv_poll_t poll;
  napi_env env;
  napi_ref cb;
  napi_ref slab_ref;
  napi_ref meta_ref;
  napi_async_context actx;
  char* slab;
  size_t slab_len;
  int32_t* meta;
  size_t meta_len;
  int fd;
  int closed;
  // closes the acceptor when its environment goes away (a worker thread ending): node aborts on a loop
  // closed with a handle still open. Removed (which also tells node the cleanup is done) in on_closed.
  napi_async_cleanup_hook_handle cleanup;
} Acceptor;

static void call_js(Acceptor* a, int err) {
  napi_env env = a->env;
  napi_handle_scope scope;
  napi_open_handle_scope(env, &scope);
  napi_value cb, recv, arg, result;
  napi_get_reference_value(env, a->cb, &cb);
  napi_get_global(env, &recv);
  napi_create_int32(env, err, &arg);
  napi_status st = napi_make_callback(env, a->actx, recv, cb, 1, &arg, &result);
  if (st == napi_pending_exception) {
    napi_value ex;
    napi_get_and_clear_last_exception(env, &ex);
    napi_fatal_exception(env, ex);
  }
  napi_close_handle_scope(env, scope);
}

static void on_poll(uv_poll_t* p, int status, int events) {
  Acceptor* a = (Acceptor*)p->data;
  if (a->closed) return;
  if (status < 0) {
    uv_poll_stop(&a->poll);
    a->meta[1] = 0;
    call_js(a, status);
    return;
  }
  size_t off = (size_t)a->meta[0];
  size_t max = (a->meta_len - META_HEAD) / 3;
  size_t n = 0;
  int err = 0;
  while (n < max && off + READ_MAX <= a->slab_len) {
    int c = accept4(a->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (c < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK) err = -errno;
      break;
    }
    ssize_t r;
    do r = read(c, a->slab + off, READ_MAX); while (r < 0 && errno == EINTR);
    int32_t* e = a->meta + META_HEAD + 3 * n;
    e[0] = c;
    e[1] = (int32_t)off;
    e[2] = r >= 0 ? (int32_t)r : -errno;
    if (r > 0) off += ((size_t)r + 7) & ~(size_t)7;
    n++;
  }
  a->meta[0] = (int32_t)off;
  a->meta[1] = (int32_t)n;
  if (err != 0) uv_poll_stop(&a->poll); // EMFILE and the like: JavaScript starts it again a little later
  if (n > 0 || err != 0) call_js(a, err);
}

static int set_slab(napi_env env, Acceptor* a, napi_value slab) {
  void* data;
  size_t len;
  if (napi_get_buffer_info(env, slab, &data, &len) != napi_ok || len < READ_MAX) return 0;
  if (a->slab_ref != NULL) napi_delete_reference(env, a->slab_ref);
  napi_create_reference(env, slab, 1, &a->slab_ref);
  a->slab = data;
  a->slab_len = len;
  return 1;
}

static void on_env_cleanup(napi_async_cleanup_hook_handle hook, void* arg);

// acceptor(fd, slab: Buffer, meta: Int32Array, onBatch(err)) -> external. fd is duplicated: the caller may
// close its own descriptor for the socket.
static napi_value AcceptorNew(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  int32_t fd;
  if (!fd_args(env, info, 4, 4, argv, &fd, "acceptor(fd, slab, meta, onBatch)")) return NULL;
  napi_typedarray_type tt;
  size_t mlen, moff;
  void* mdata;
  napi_value mab;
  if (napi_get_typedarray_info(env, argv[2], &tt, &mlen, &mdata, &mab, &moff) != napi_ok || tt != napi_int32_array || mlen < META_HEAD + 3) return type_error(env, "acceptor: meta must be an Int32Array");
  napi_valuetype t;
  napi_typeof(env, argv[3], &t);
  if (t != napi_function) return type_error(env, "acceptor: onBatch must be a function");
  Acceptor* a = calloc(1, sizeof *a);
  if (a == NULL) return type_error(env, "acceptor: out of memory");
  a->env = env;
  if (!set_slab(env, a, argv[1])) { free(a); return type_error(env, "acceptor: slab must be a Buffer of at least 16 KiB"); }
  a->meta = mdata;
  a->meta_len = mlen;
  napi_create_reference(env, argv[2], 1, &a->meta_ref);
  napi_create_reference(env, argv[3], 1, &a->cb);
  napi_value name, resource;
  napi_create_string_latin1(env, "uwcore:accept", NAPI_AUTO_LENGTH, &name);
  napi_create_object(env, &resource);
  napi_async_init(env, resource, name, &a->actx);
  a->fd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
  uv_loop_t* loop;
  napi_get_uv_event_loop(env, &loop);
  int r = a->fd < 0 ? -errno : uv_poll_init_socket(loop, &a->poll, a->fd);
  a->poll.data = a;
  if (r == 0) r = uv_poll_start(&a->poll, UV_READABLE, on_poll);
  if (r != 0) {
    if (a->fd >= 0) close(a->fd);
    napi_delete_reference(env, a->cb);
    napi_delete_reference(env, a->meta_ref);
    napi_delete_reference(env, a->slab_ref);
    napi_async_destroy(env, a->actx);
    free(a);
    char msg[96];
    snprintf(msg, sizeof msg, "acceptor: %s", uv_strerror(r));
    napi_throw_error(env, "UW_ERR_NATIVE", msg);
    return NULL;
  }
  napi_add_async_cleanup_hook(env, on_env_cleanup, a, &a->cleanup);
  napi_value ext;
  napi_create_external(env, a, NULL, NULL, &ext);
  return ext;
}

static Acceptor* get_acceptor(napi_env env, napi_value v) {
  void* p = NULL;
  if (napi_get_value_external(env, v, &p) != napi_ok) return NULL;
  return (Acceptor*)p;
}

// acceptorSlab(acc, slab): the next reads go to slab (set meta[0] to 0 as well)
static napi_value AcceptorSlab(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  Acceptor* a = argc < 2 ? NULL : get_acceptor(env, argv[0]);
  if (a == NULL || a->closed) return type_error(env, "acceptorSlab(acceptor, slab)");
  if (!set_slab(env, a, argv[1])) return type_error(env, "acceptorSlab: slab must be a Buffer of at least 16 KiB");
  return NULL;
}

// acceptorPoll(acc, on): stop or start accepting
static napi_value AcceptorPoll(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  bool on = false;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  Acceptor* a = argc < 2 ? NULL : get_acceptor(env, argv[0]);
  if (a == NULL) return type_error(env, "acceptorPoll(acceptor, on)");
  napi_get_value_bool(env, argv[1], &on);
  if (a->closed) return num(env, 0);
  return num(env, on ? uv_poll_start(&a->poll, UV_READABLE, on_poll) : uv_poll_stop(&a->poll));
}

static void on_closed(uv_handle_t* h) {
  Acceptor* a = (Acceptor*)h->data;
  if (a->cleanup != NULL) napi_remove_async_cleanup_hook(a->cleanup);
  free(a);
}

// the environment is being torn down without acceptorClose (its references go with it)
static void on_env_cleanup(napi_async_cleanup_hook_handle hook, void* arg) {
  Acceptor* a = (Acceptor*)arg;
  if (a->closed) return; // acceptorClose ran: on_closed is pending and removes the hook
  a->closed = 1;
  uv_close((uv_handle_t*)&a->poll, on_closed);
  close(a->fd);
}

// acceptorClose(acc): stop and close the duplicate descriptor (the listening socket closes when every
// descriptor for it is closed)
static napi_value AcceptorClose(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  Acceptor* a = argc < 1 ? NULL : get_acceptor(env, argv[0]);
  if (a == NULL) return type_error(env, "acceptorClose(acceptor)");
  if (a->closed) return NULL;
  a->closed = 1;
  napi_delete_reference(env, a->cb);
  napi_delete_reference(env, a->meta_ref);
  napi_delete_reference(env, a->slab_ref);
  napi_async_destroy(env, a->actx);
  uv_close((uv_handle_t*)&a->poll, on_closed); // takes the descriptor out of the loop at once
  close(a->fd);                                  // so the port is free when close() returns
  return NULL;
}

NAPI_MODULE_INIT() {
  napi_property_descriptor props[] = {
    {"setIntOpt", NULL, SetIntOpt, NULL, NULL, NULL, napi_enumerable, NULL},
    {"write", NULL, Write, NULL, NULL, NULL, napi_enumerable, NULL},
    {"writev", NULL, Writev, NULL, NULL, NULL, napi_enumerable, NULL},
    {"close", NULL, Close, NULL, NULL, NULL, napi_enumerable, NULL},
    {"name", NULL, Name, NULL, NULL, NULL, napi_enumerable, NULL},
    {"acceptor", NULL, AcceptorNew, NULL, NULL, NULL, napi_enumerable, NULL},
    {"acceptorSlab", NULL, AcceptorSlab, NULL, NULL, NULL, napi_enumerable, NULL},
    {"acceptorPoll", NULL, AcceptorPoll, NULL, NULL, NULL, napi_enumerable, NULL},
    {"acceptorClose", NULL, AcceptorClose, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  return exports;
}

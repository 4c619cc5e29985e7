package etcdutil

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// PermissionError is etcd's "permission denied" for a request etcdlb made,
// with what etcd's error leaves out: the key or prefix, the user, and the
// permission the user lacks. etcd checks a request's keys all at once and
// names none, so the key is found by asking again for each one alone.
type PermissionError struct {
	Op     string // what etcdlb was doing, e.g. "list", "register"
	User   string // "" when the client logs in with a certificate
	Key    string
	Prefix bool   // Key is a prefix: the permission is on every key under it
	Perm   string // "read" or "write"
	Err    error  // etcd's error
}

func (e *PermissionError) Error() string {
	user := fmt.Sprintf("user %q", e.User)
	if e.User == "" {
		user = "user of the client certificate"
	}
	what, flag := "key", ""
	if e.Prefix {
		what, flag = "prefix", " --prefix"
	}
	return fmt.Sprintf("etcdlb: %s: permission denied: etcd %s has no %s permission on %s %q (etcdctl role grant-permission ROLE %s %s%s)",
		e.Op, user, e.Perm, what, e.Key, e.Perm, e.Key, flag)
}

func (e *PermissionError) Unwrap() error { return e.Err }

// Access is one permission a request needs.
type Access struct {
	key    string
	prefix bool // every key under key
	write  bool // else read
}

func Read(key string) Access       { return Access{key: key} }
func ReadPrefix(key string) Access { return Access{key: key, prefix: true} }
func Write(key string) Access      { return Access{key: key, write: true} }

// Explain returns err, or, when etcd denied it, a *PermissionError naming
// the first of needs (the permissions of the request that failed, in order)
// that the client's user lacks. The probes change nothing in etcd.
func Explain(ctx context.Context, cli *clientv3.Client, op string, err error, needs ...Access) error {
	if !errors.Is(err, rpctypes.ErrPermissionDenied) {
		return err
	}
	var pe *PermissionError
	if errors.As(err, &pe) {
		return err
	}
	if ctx.Err() != nil {
		// The request's own deadline may be spent: probe on a fresh one.
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer cancel()
	}
	for _, a := range needs {
		if probe(ctx, cli, a) {
			perm := "read"
			if a.write {
				perm = "write"
			}
			return &PermissionError{Op: op, User: cli.Username, Key: a.key, Prefix: a.prefix, Perm: perm, Err: err}
		}
	}
	keys := make([]string, len(needs))
	for i, a := range needs {
		keys[i] = fmt.Sprintf("%q", a.key)
	}
	return fmt.Errorf("etcdlb: %s %s as user %q: %w", op, strings.Join(keys, ", "), cli.Username, err)
}

// probe reports whether etcd denies a. A write is probed as a put or
// delete in the else branch of a transaction without conditions: etcd
// checks the permissions of both branches and runs only the then branch, so
// nothing is written.
func probe(ctx context.Context, cli *clientv3.Client, a Access) bool {
	var opts []clientv3.OpOption
	if a.prefix {
		opts = append(opts, clientv3.WithPrefix())
	}
	var err error
	if a.write {
		op := clientv3.OpPut(a.key, "")
		if a.prefix {
			op = clientv3.OpDelete(a.key, opts...)
		}
		_, err = cli.Txn(ctx).Else(op).Commit()
	} else {
		_, err = cli.Get(ctx, a.key, append(opts, clientv3.WithCountOnly())...)
	}
	return errors.Is(err, rpctypes.ErrPermissionDenied)
}

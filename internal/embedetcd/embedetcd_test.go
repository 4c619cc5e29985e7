package embedetcd_test

import (
	"context"
	"testing"
	"time"

	"github.com/etcdlb/etcdlb/internal/embedetcd"
)

func TestStartPutGetRestart(t *testing.T) {
	c := embedetcd.StartT(t, embedetcd.Options{})
	cli := c.ClientT(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := cli.Put(ctx, "k", "v"); err != nil {
		t.Fatal(err)
	}
	c.Stop(0)
	if err := c.Restart(0); err != nil {
		t.Fatal(err)
	}
	resp, err := cli.Get(ctx, "k")
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("after restart: %v %v", resp, err)
	}
	if err := c.RestartEmpty(0); err != nil {
		t.Fatal(err)
	}
	resp, err = cli.Get(ctx, "k")
	if err != nil || len(resp.Kvs) != 0 {
		t.Fatalf("after empty restart: %v %v", resp, err)
	}
}

func TestThreeMembersTLSAuth(t *testing.T) {
	c := embedetcd.StartT(t, embedetcd.Options{Members: 3, TLS: true, Auth: true})
	cli := c.ClientT(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := cli.Put(ctx, "k", "v"); err != nil {
		t.Fatal(err)
	}
	c.Stop(1)
	if _, err := cli.Put(ctx, "k", "v2"); err != nil {
		t.Fatal(err)
	}
	if err := c.Restart(1); err != nil {
		t.Fatal(err)
	}
}

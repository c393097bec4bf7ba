// Command pause is a pod sandbox's placeholder process (what registry.k8s.io/pause does): it holds the
// pod's namespaces by sleeping until it is told to stop. As PID 1 of a pod that shares its PID namespace
// it also reaps the zombies that orphaned processes leave behind. SIGINT and SIGTERM end it with status
// 0; any other argument than -v is refused.
package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

const version = "kimage-test-pause/1"

func main() {
	if len(os.Args) > 1 {
		if os.Args[1] == "-v" {
			fmt.Println(version)
			return
		}
		fmt.Fprintln(os.Stderr, "usage: pause [-v]")
		os.Exit(2)
	}
	if os.Getpid() != 1 {
		fmt.Fprintln(os.Stderr, "Warning: pause should be the first process")
	}
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for s := range sigs {
		switch s {
		case syscall.SIGCHLD:
			reap()
		default:
			fmt.Fprintf(os.Stderr, "Shutting down, got signal: %v\n", s)
			os.Exit(0)
		}
	}
}

// reap collects every exited child without blocking.
func reap() {
	for {
		var status syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &status, syscall.WNOHANG, nil)
		if pid <= 0 || err != nil {
			return
		}
	}
}

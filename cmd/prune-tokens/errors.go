package main

import (
	"context"
	"errors"
	"fmt"
)

// Exit codes, as documented in the README and kept from the old tool.
const (
	exitOK         = 0
	exitUnexpected = 1
	exitInit       = 2 // bad flag or value, invalid input, database unreachable, refused manifest
	exitOperation  = 3 // failure or interruption while planning or deleting
)

// exitError carries the exit code an error maps to.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// initError marks an error found before any work started: exit 2.
func initError(err error) error {
	if err == nil {
		return nil
	}
	return &exitError{exitInit, err}
}

func initErrorf(format string, args ...any) error { return initError(fmt.Errorf(format, args...)) }

// opError marks an error during the operation itself: exit 3.
func opError(err error) error {
	if err == nil {
		return nil
	}
	return &exitError{exitOperation, err}
}

// exitCode is the one table from errors to exit codes.
func exitCode(err error) int {
	var ee *exitError
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &ee):
		return ee.code
	case errors.Is(err, context.Canceled):
		return exitOperation
	default:
		return exitUnexpected
	}
}

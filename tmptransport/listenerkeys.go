package tmptransport

import (
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
)

// listenerKeys are the secrets one listener derives from the node's secret
// (Config.NodeSecret): the key of its stateless-reset tokens and the root of
// its address-validation token keys. Each is
//
//	HKDF-SHA256(ikm = node secret, salt = listener identity, info = purpose)
//
// with the listener's identity (its bound address). So a restarted listener
// makes the same tokens (a front-end learns of the restart from the first
// packet), while a second listener of the same node makes different ones:
// sending a victim's session ID, which travels in clear, to another
// listener never yields a token that kills the session on this one
// (RFC 9000 §10.3.2; TestResetTokenNotObtainableFromSecondListener).
type listenerKeys struct {
	reset []byte // HMAC key of reset tokens
	token []byte // root of the rotating token keys (token.go)
}

func newListenerKeys(nodeSecret []byte, identity string) (*listenerKeys, error) {
	if len(nodeSecret) == 0 {
		// No stable secret: resets and tokens still work until this
		// process restarts.
		nodeSecret = make([]byte, 32)
		rand.Read(nodeSecret)
	}
	derive := func(purpose string) ([]byte, error) {
		return hkdf.Key(sha256.New, nodeSecret, []byte(identity), "tmp listener "+purpose, 32)
	}
	reset, err := derive("stateless reset")
	if err != nil {
		return nil, err
	}
	token, err := derive("address validation")
	if err != nil {
		return nil, err
	}
	return &listenerKeys{reset: reset, token: token}, nil
}

// resetToken is the stateless-reset token of a session on this listener:
// HMAC-SHA256(reset key, session ID), truncated to 16 bytes.
func (k *listenerKeys) resetToken(id sessionID) []byte {
	h := hmac.New(sha256.New, k.reset)
	h.Write(id[:])
	return h.Sum(nil)[:statelessResetTokenLen]
}

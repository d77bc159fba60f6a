//go:build wasip1

package sdk

import "unsafe"

//go:wasmimport conductor fetch
func conductorFetch(urlPtr unsafe.Pointer, urlLen uint32, bufPtr unsafe.Pointer, bufCap uint32) uint64

//go:wasmimport conductor read_data
func conductorReadData(namePtr unsafe.Pointer, nameLen uint32, bufPtr unsafe.Pointer, bufCap uint32) int64

//go:wasmimport conductor log
func conductorLog(msgPtr unsafe.Pointer, msgLen uint32)

func hostFetch(url string, buf []byte) (int, int) {
	r := conductorFetch(unsafe.Pointer(unsafe.StringData(url)), uint32(len(url)), unsafe.Pointer(&buf[0]), uint32(len(buf)))
	return int(r >> 32), int(uint32(r))
}

func hostReadData(name string, buf []byte) int {
	return int(conductorReadData(unsafe.Pointer(unsafe.StringData(name)), uint32(len(name)), unsafe.Pointer(&buf[0]), uint32(len(buf))))
}

func hostLog(msg string) {
	if msg == "" {
		return
	}
	conductorLog(unsafe.Pointer(unsafe.StringData(msg)), uint32(len(msg)))
}

// Package platforms knows what the image's binary is for each platform a
// release is built for (.env's PLATFORMS), for the tests that check it.
package platforms

import "debug/elf"

// ELF is the machine of a binary built for each platform.
var ELF = map[string]elf.Machine{
	"linux/amd64":   elf.EM_X86_64,
	"linux/arm64":   elf.EM_AARCH64,
	"linux/arm/v7":  elf.EM_ARM,
	"linux/ppc64le": elf.EM_PPC64,
	"linux/s390x":   elf.EM_S390,
	"linux/riscv64": elf.EM_RISCV,
}

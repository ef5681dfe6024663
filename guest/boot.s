/*
 * migrated workload guest: a multiboot (v1) kernel for x86, 32-bit
 * protected mode, paging off, no interrupts.
 *
 * Contract with the host (crates/driver-qemu/src/workload.rs reads it):
 *   STATUS_ADDR + 0   u64  magic "MIGRGST1" (0x315453475247494d little endian)
 *   STATUS_ADDR + 8   u64  pass counter, +1 after every pass over the region
 *   STATUS_ADDR + 16  u32  size of the dirtied region in MiB (after clamping)
 *   STATUS_ADDR + 20  u32  layout version (1)
 * The dirtied region starts at DIRTY_BASE; each pass writes the current
 * counter into the first 8 bytes of every 4 KiB page of it, and the magic's
 * first word after it, so every page is dirty again for the migration's
 * next iteration and none is a zero page (QEMU sends a zero page as a
 * header only, so a first pass writing counter 0 would move no data).
 *
 * The region size comes from the multiboot command line (QEMU's -append),
 * "dirty_mib=N", default DEFAULT_DIRTY_MIB; it is clamped to the memory the
 * boot loader reports (mem_upper), so a too large value cannot fault.
 *
 * The ACPI power button (QEMU's system_powerdown) powers the guest off: at
 * boot it enables the button's event in the PM1 block the firmware set up
 * (PIIX4 PM at 00:01.3 or ICH9 LPC at 00:1f.0, PM base in config register
 * 0x40 of both), and after every pass it polls the button's status and, when
 * pressed, enters S5 (PM1_CNT: SLP_TYP 0, SLP_EN). No interrupts: polling
 * is enough, and a machine without either device just ignores the button.
 */

    .equ MB_MAGIC, 0x1BADB002
    .equ MB_FLAGS, 0x00000003      /* page-align modules, want memory info */
    .equ MB_LOADER_MAGIC, 0x2BADB002

    .equ STATUS_ADDR, 0x00200000      /* 2 MiB: above the image, below the region */
    .equ DIRTY_BASE, 0x00400000      /* 4 MiB */
    .equ DEFAULT_DIRTY_MIB, 16
    .equ PAGE, 4096
    .equ COM1, 0x3F8
    .equ PCI_ADDR, 0xCF8
    .equ PCI_DATA, 0xCFC
    .equ PIIX4_PM, 0x80000B00           /* config address of 00:01.3 */
    .equ ICH9_LPC, 0x8000F800           /* config address of 00:1f.0 */
    .equ PIIX4_PM_ID, 0x71138086
    .equ ICH9_LPC_ID, 0x29188086
    .equ PM_BASE_REG, 0x40
    .equ PM1_EN, 2                      /* offsets in the PM1 block */
    .equ PM1_CNT, 4
    .equ PWRBTN, 0x0100                 /* PM1_STS / PM1_EN bit */
    .equ SLP_S5, 0x2000                 /* PM1_CNT: SLP_EN, SLP_TYP 0 */

    .section .multiboot, "a"
    .align 4
    .long MB_MAGIC
    .long MB_FLAGS
    .long -(MB_MAGIC + MB_FLAGS)

    .section .rodata
banner:
    .asciz "migrated-guest: running, dirty_mib="
key:
    .asciz "dirty_mib="

    .text
    .code32
    .globl _start
_start:
    cli
    /* ebx = multiboot info, only trusted if eax holds the loader magic. */
    mov     $DEFAULT_DIRTY_MIB, %edi        /* edi = dirty MiB */
    xor     %esi, %esi                      /* esi = usable top of RAM (0 = unknown) */
    cmp     $MB_LOADER_MAGIC, %eax
    jne     clamp

    mov     0(%ebx), %ecx                   /* info flags */
    test    $1, %ecx                        /* bit 0: mem_lower/mem_upper valid */
    jz      1f
    mov     8(%ebx), %esi                   /* mem_upper, KiB above 1 MiB */
    shl     $10, %esi
    add     $0x100000, %esi
1:
    test    $4, %ecx                        /* bit 2: cmdline valid */
    jz      clamp
    mov     16(%ebx), %edx                  /* edx = cmdline, NUL-terminated */

    /* Find "dirty_mib=" anywhere in the command line. */
find:
    cmpb    $0, (%edx)
    je      clamp
    mov     %edx, %eax
    mov     $key, %ebp
cmpkey:
    movb    (%ebp), %cl
    test    %cl, %cl
    jz      found                           /* whole key matched, eax -> digits */
    cmpb    %cl, (%eax)
    jne     nextpos
    inc     %eax
    inc     %ebp
    jmp     cmpkey
nextpos:
    inc     %edx
    jmp     find

found:
    xor     %edi, %edi
digits:
    movzbl  (%eax), %ecx
    sub     $48 /* '0' */, %ecx
    cmp     $9, %ecx
    ja      clamp                           /* not a digit (unsigned compare) */
    cmp     $100000, %edi                   /* stop before the value overflows */
    jae     clamp
    imul    $10, %edi, %edi
    add     %ecx, %edi
    inc     %eax
    jmp     digits

clamp:
    /* Never dirty past the memory the loader reported. */
    test    %esi, %esi
    jz      store
    mov     %esi, %eax
    sub     $DIRTY_BASE, %eax
    jbe     nomem
    shr     $20, %eax                       /* MiB available above DIRTY_BASE */
    cmp     %eax, %edi
    jbe     store
    mov     %eax, %edi
    jmp     store
nomem:
    xor     %edi, %edi

store:
    movl    $0x5247494d, STATUS_ADDR        /* "MIGR" */
    movl    $0x31545347, STATUS_ADDR + 4    /* "GST1" */
    movl    $0, STATUS_ADDR + 8
    movl    $0, STATUS_ADDR + 12
    movl    %edi, STATUS_ADDR + 16
    movl    $1, STATUS_ADDR + 20

    /* Boot line on COM1 (ignored when the machine has no serial port). */
    mov     $banner, %ebp
puts:
    movb    (%ebp), %al
    test    %al, %al
    jz      putnum
    call    putc
    inc     %ebp
    jmp     puts
putnum:
    /* Print edi in decimal: push digits on the stack, pop them out. */
    mov     $stack_top, %esp
    mov     %edi, %eax
    xor     %ecx, %ecx
    mov     $10, %ebx
1:
    xor     %edx, %edx
    div     %ebx
    push    %edx
    inc     %ecx
    test    %eax, %eax
    jnz     1b
2:
    pop     %eax
    add     $48 /* '0' */, %al
    call    putc
    loop    2b
    mov     $10 /* newline */, %al
    call    putc

    /* esi = PM1 block of the ACPI power button, 0 when there is none. */
    xor     %esi, %esi
    mov     $PIIX4_PM, %ebx                 /* ebx = the device's config address */
    mov     %ebx, %eax
    call    pciread
    cmp     $PIIX4_PM_ID, %eax
    je      pm_found
    mov     $ICH9_LPC, %ebx
    mov     %ebx, %eax
    call    pciread
    cmp     $ICH9_LPC_ID, %eax
    jne     pm_done
pm_found:
    lea     PM_BASE_REG(%ebx), %eax
    call    pciread
    and     $0xffc0, %eax                   /* I/O base, enable bits dropped */
    jz      pm_done
    mov     %eax, %esi
    lea     PM1_EN(%esi), %edx
    mov     $PWRBTN, %ax
    outw    %ax, %dx
pm_done:

    /* ecx = end of the region (DIRTY_BASE + edi MiB). */
    mov     %edi, %ecx
    shl     $20, %ecx
    add     $DIRTY_BASE, %ecx
    xor     %eax, %eax                      /* edx:eax = counter */
    xor     %edx, %edx

pass:
    mov     $DIRTY_BASE, %ebx
page:
    cmp     %ecx, %ebx
    jae     bump
    mov     %eax, (%ebx)
    mov     %edx, 4(%ebx)
    movl    $0x5247494d, 8(%ebx)            /* "MIGR": never a zero page */
    add     $PAGE, %ebx
    jmp     page
bump:
    add     $1, %eax
    adc     $0, %edx
    /* Two 32-bit stores: a reader could see a torn value only when the
     * low word wraps, after 2^32 passes. */
    mov     %edx, STATUS_ADDR + 12
    mov     %eax, STATUS_ADDR + 8
    test    %esi, %esi
    jz      pass
    /* The power button pressed: power off. */
    push    %eax
    push    %edx
    mov     %esi, %edx                      /* PM1_STS */
    inw     %dx, %ax
    test    $PWRBTN, %ax
    jz      1f
    lea     PM1_CNT(%esi), %edx
    mov     $SLP_S5, %ax
    outw    %ax, %dx
1:
    pop     %edx
    pop     %eax
    jmp     pass

/* pciread: eax = config address; returns that config dword in eax.
 * Clobbers dx. */
pciread:
    mov     $PCI_ADDR, %dx
    outl    %eax, %dx
    mov     $PCI_DATA, %dx
    inl     %dx, %eax
    ret

/* putc: write al to COM1 once the transmitter is empty. Clobbers dx. */
putc:
    push    %eax
    mov     $COM1 + 5, %dx
3:
    inb     %dx, %al
    test    $0x20, %al
    jz      3b
    pop     %eax
    mov     $COM1, %dx
    outb    %al, %dx
    ret

    .bss
    .align 16
stack:
    .skip 1024
stack_top:

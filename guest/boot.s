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
 */

    .equ MB_MAGIC, 0x1BADB002
    .equ MB_FLAGS, 0x00000003      /* page-align modules, want memory info */
    .equ MB_LOADER_MAGIC, 0x2BADB002

    .equ STATUS_ADDR, 0x00200000      /* 2 MiB: above the image, below the region */
    .equ DIRTY_BASE, 0x00400000      /* 4 MiB */
    .equ DEFAULT_DIRTY_MIB, 16
    .equ PAGE, 4096
    .equ COM1, 0x3F8

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
    jmp     pass

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

# cmake -DIN=file -DOUT=file.c -DNAME=symbol -P embed.cmake
#
# Writes @OUT, a C file defining the bytes of @IN as
#   const unsigned char NAME[];  const size_t NAME_len;
# so a build product (the served protos' descriptor set) can be compiled in
# without a tool the machine may lack (xxd) or assembler tricks.
file(READ ${IN} hex HEX)
string(LENGTH "${hex}" digits)
math(EXPR len "${digits} / 2")
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
# 16 bytes a line keeps the file readable in an editor and a diff (CMake's
# regular expressions have no {n}).
set(line "")
foreach(i RANGE 15)
  string(APPEND line "0x[0-9a-f][0-9a-f],")
endforeach()
string(REGEX REPLACE "(${line})" "\\1\n    " bytes "${bytes}")
file(WRITE ${OUT} "/* Generated from ${IN} by proto/embed.cmake; do not edit. */\n"
                  "#include <stddef.h>\n\n"
                  "const unsigned char ${NAME}[] = {\n    ${bytes}\n};\n"
                  "const size_t ${NAME}_len = ${len};\n")

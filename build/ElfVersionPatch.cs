// Marks one symbol-version requirement of an ELF64 shared library as weak (VER_FLG_WEAK), so the dynamic loader
// accepts a host library that lacks that version. Used by the build (TorchSharpLoaderFix.targets, as an inline
// MSBuild task) and by the tests (linked source). See ../shared/PLATFORM.md: libLibTorchSharp.so asks for
// GLIBCXX_3.4.32 only for std::ios_base_library_init, which it references without a relocation; Debian 12's
// libstdc++ stops at GLIBCXX_3.4.30.
#nullable enable
using System;
using System.IO;
using System.Text;

namespace Osprey.Build
{
    public static class ElfVersionPatch
    {
        const uint ShtGnuVerneed = 0x6ffffffe;
        const ushort VerFlgWeak = 0x2;

        /// <summary>Outcome of <see cref="MarkWeak"/>.</summary>
        public enum Result { Patched, AlreadyWeak, NotRequired }

        /// <summary>True when the file holds the NUL-terminated version name (e.g. a libstdc++ that defines it).</summary>
        public static bool ContainsVersion(string path, string version)
        {
            byte[] bytes = File.ReadAllBytes(path);
            byte[] needle = Encoding.ASCII.GetBytes(version + "\0");
            return IndexOf(bytes, needle) >= 0;
        }

        /// <summary>Reads the flags of the requirement entry named <paramref name="version"/>, or null if absent.</summary>
        public static ushort? ReadFlags(string path, string version)
        {
            byte[] elf = File.ReadAllBytes(path);
            long at = FindAuxEntry(elf, version, path);
            return at < 0 ? null : BitConverter.ToUInt16(elf, (int)at + 4);
        }

        /// <summary>Sets VER_FLG_WEAK on the requirement entry named <paramref name="version"/>. Idempotent.</summary>
        public static Result MarkWeak(string path, string version)
        {
            byte[] elf = File.ReadAllBytes(path);
            long at = FindAuxEntry(elf, version, path);
            if (at < 0) return Result.NotRequired;
            ushort flags = BitConverter.ToUInt16(elf, (int)at + 4);
            if ((flags & VerFlgWeak) != 0) return Result.AlreadyWeak;
            using (var stream = new FileStream(path, FileMode.Open, FileAccess.Write))
            {
                stream.Position = at + 4;
                byte[] patched = BitConverter.GetBytes((ushort)(flags | VerFlgWeak));
                stream.Write(patched, 0, 2);
            }
            return Result.Patched;
        }

        // Returns the file offset of the Elf64_Vernaux entry whose name is `version`, or -1.
        static long FindAuxEntry(byte[] elf, string version, string path)
        {
            if (elf.Length < 64 || elf[0] != 0x7f || elf[1] != (byte)'E' || elf[2] != (byte)'L' || elf[3] != (byte)'F')
                throw new InvalidDataException(path + ": not an ELF file");
            if (elf[4] != 2 || elf[5] != 1)
                throw new InvalidDataException(path + ": only little-endian ELF64 is supported");
            long shoff = BitConverter.ToInt64(elf, 0x28);
            int shentsize = BitConverter.ToUInt16(elf, 0x3A);
            int shnum = BitConverter.ToUInt16(elf, 0x3C);
            for (int i = 0; i < shnum; i++)
            {
                long sh = shoff + (long)i * shentsize;
                if (BitConverter.ToUInt32(elf, (int)sh + 4) != ShtGnuVerneed) continue;
                long offset = BitConverter.ToInt64(elf, (int)sh + 0x18);
                uint link = BitConverter.ToUInt32(elf, (int)sh + 0x28);
                uint count = BitConverter.ToUInt32(elf, (int)sh + 0x2C);
                long strtab = BitConverter.ToInt64(elf, (int)(shoff + link * shentsize) + 0x18);
                long need = offset;
                for (uint n = 0; n < count; n++)
                {
                    ushort auxCount = BitConverter.ToUInt16(elf, (int)need + 2);
                    long aux = need + BitConverter.ToUInt32(elf, (int)need + 8);
                    for (int a = 0; a < auxCount; a++)
                    {
                        uint name = BitConverter.ToUInt32(elf, (int)aux + 8);
                        if (ReadCString(elf, strtab + name) == version) return aux;
                        aux += BitConverter.ToUInt32(elf, (int)aux + 12);
                    }
                    need += BitConverter.ToUInt32(elf, (int)need + 12);
                }
            }
            return -1;
        }

        static string ReadCString(byte[] bytes, long start)
        {
            long end = start;
            while (end < bytes.Length && bytes[end] != 0) end++;
            return Encoding.ASCII.GetString(bytes, (int)start, (int)(end - start));
        }

        static int IndexOf(byte[] haystack, byte[] needle)
        {
            for (int i = 0; i <= haystack.Length - needle.Length; i++)
            {
                int j = 0;
                while (j < needle.Length && haystack[i + j] == needle[j]) j++;
                if (j == needle.Length) return i;
            }
            return -1;
        }
    }
#if !OSPREY_TESTS
    /// <summary>MSBuild task: applies the loader fix to every libLibTorchSharp.so under Folder when needed.</summary>
    public class MarkGlibcxxWeak : Microsoft.Build.Utilities.Task
    {
        public const string Version = "GLIBCXX_3.4.32";
        static readonly string[] HostCandidates =
        {
            "/usr/lib/x86_64-linux-gnu/libstdc++.so.6", "/lib/x86_64-linux-gnu/libstdc++.so.6",
            "/usr/lib64/libstdc++.so.6", "/usr/lib/libstdc++.so.6",
        };

        [Microsoft.Build.Framework.Required] public string Folder { get; set; } = "";

        public override bool Execute()
        {
            string? host = Array.Find(HostCandidates, File.Exists);
            if (host == null || ElfVersionPatch.ContainsVersion(host, Version)) return true;
            if (!Directory.Exists(Folder)) return true;
            foreach (string lib in Directory.EnumerateFiles(Folder, "libLibTorchSharp.so", SearchOption.AllDirectories))
            {
                if (ElfVersionPatch.MarkWeak(lib, Version) == ElfVersionPatch.Result.Patched)
                    Log.LogMessage(Microsoft.Build.Framework.MessageImportance.High,
                        "osprey: marked " + Version + " weak in " + lib + " (host " + host + " lacks it)");
            }
            return true;
        }
    }
#endif
}

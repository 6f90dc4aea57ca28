using Osprey.Build;

namespace Osprey.Tests.Build;

/// <summary>The Debian 12 loader fix (build/ElfVersionPatch.cs) on a copy of the unpatched TorchSharp library.</summary>
public class LoaderFixTests
{
    const string Version = "GLIBCXX_3.4.32";
    const ushort Weak = 0x2;

    static string PackagedLibrary()
    {
        string root = Environment.GetEnvironmentVariable("NUGET_PACKAGES")
            ?? Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".nuget", "packages");
        string path = Path.Combine(root, "torchsharp", "0.107.0", "runtimes", "linux-x64", "native", "libLibTorchSharp.so");
        Assert.True(File.Exists(path), $"restored TorchSharp native library expected at {path}");
        return path;
    }

    [Fact]
    public void MarksTheRequirementWeakOnceAndChangesNothingElse()
    {
        string original = PackagedLibrary();
        string copy = Path.Combine(Path.GetTempPath(), $"osprey-elf-{Guid.NewGuid():N}.so");
        File.Copy(original, copy);
        try
        {
            ushort? before = ElfVersionPatch.ReadFlags(copy, Version);
            Assert.NotNull(before);
            Assert.Equal(0, before!.Value & Weak); // the package's library has a hard requirement

            Assert.Equal(ElfVersionPatch.Result.Patched, ElfVersionPatch.MarkWeak(copy, Version));
            Assert.Equal((ushort)(before.Value | Weak), ElfVersionPatch.ReadFlags(copy, Version)!.Value);
            Assert.Equal(ElfVersionPatch.Result.AlreadyWeak, ElfVersionPatch.MarkWeak(copy, Version)); // idempotent

            byte[] a = File.ReadAllBytes(original), b = File.ReadAllBytes(copy);
            Assert.Equal(a.Length, b.Length);
            Assert.Equal(1, a.Zip(b).Count(p => p.First != p.Second)); // one byte of vna_flags
            Assert.Equal(ElfVersionPatch.Result.NotRequired, ElfVersionPatch.MarkWeak(copy, "GLIBCXX_9.9.99"));
        }
        finally
        {
            File.Delete(copy);
        }
    }

    [Fact]
    public void BuildOutputIsPatchedExactlyWhenTheHostLacksTheVersion()
    {
        string host = new[] { "/usr/lib/x86_64-linux-gnu/libstdc++.so.6", "/usr/lib64/libstdc++.so.6" }.First(File.Exists);
        bool hostHasIt = ElfVersionPatch.ContainsVersion(host, Version);
        string built = Directory.EnumerateFiles(AppContext.BaseDirectory, "libLibTorchSharp.so", SearchOption.AllDirectories).First();
        ushort flags = ElfVersionPatch.ReadFlags(built, Version)!.Value;
        Assert.Equal(!hostHasIt, (flags & Weak) != 0);
    }

    [Fact]
    public void RejectsFilesThatAreNotElf()
    {
        string path = Path.GetTempFileName();
        File.WriteAllText(path, "not an elf file, just text long enough to pass the size check ............");
        try
        {
            var e = Assert.Throws<InvalidDataException>(() => ElfVersionPatch.ReadFlags(path, Version));
            Assert.Contains("not an ELF file", e.Message);
        }
        finally
        {
            File.Delete(path);
        }
    }
}

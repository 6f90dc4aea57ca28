using System.Runtime.InteropServices;

namespace Osprey.Distributed;

/// <summary>Loads shared libraries by soname, optionally with <c>RTLD_GLOBAL</c> (OpenMPI's plugins need it).</summary>
internal static partial class NativeLoader
{
    const int RtldNow = 0x2;
    const int RtldGlobal = 0x100;

    /// <summary>
    /// Loads the first of <paramref name="names"/> that exists; with <paramref name="global"/> its symbols become
    /// visible to libraries it dlopens later (OpenMPI 4 loads its MCA components that way). Returns the handle,
    /// or zero and the loader's messages.
    /// </summary>
    public static IntPtr TryLoad(IReadOnlyList<string> names, bool global, out string error)
    {
        var errors = new List<string>();
        foreach (string name in names)
        {
            if (global && OperatingSystem.IsLinux())
            {
                IntPtr handle = DlOpen(name, RtldNow | RtldGlobal);
                if (handle != IntPtr.Zero)
                {
                    // NativeLibrary hands back the same, already-loaded library; GetExport works on its handle.
                    if (NativeLibrary.TryLoad(name, out IntPtr same)) handle = same;
                    error = "";
                    return handle;
                }
                errors.Add(DlError());
            }
            else if (NativeLibrary.TryLoad(name, out IntPtr handle))
            {
                error = "";
                return handle;
            }
            else
            {
                errors.Add($"{name}: not found");
            }
        }
        error = string.Join("; ", errors);
        return IntPtr.Zero;
    }

    /// <summary>The address of <paramref name="symbol"/>, or an exception naming the library.</summary>
    public static IntPtr Export(IntPtr library, string libraryName, string symbol) =>
        NativeLibrary.TryGetExport(library, symbol, out IntPtr address)
            ? address
            : throw new DistributedException($"{libraryName} has no symbol {symbol} (wrong version?)");

    static IntPtr DlOpen(string name, int flags)
    {
        try { return DlOpenLibc(name, flags); }
        catch (EntryPointNotFoundException) { return DlOpenLibdl(name, flags); } // glibc < 2.34 keeps dlopen in libdl
        catch (DllNotFoundException) { return DlOpenLibdl(name, flags); }
    }

    static string DlError()
    {
        IntPtr message;
        try { message = DlErrorLibc(); }
        catch (Exception e) when (e is EntryPointNotFoundException or DllNotFoundException) { message = DlErrorLibdl(); }
        return Marshal.PtrToStringUTF8(message) ?? "unknown dlopen error";
    }

    [LibraryImport("libc", EntryPoint = "dlopen", StringMarshalling = StringMarshalling.Utf8)]
    private static partial IntPtr DlOpenLibc(string fileName, int flags);

    [LibraryImport("libdl.so.2", EntryPoint = "dlopen", StringMarshalling = StringMarshalling.Utf8)]
    private static partial IntPtr DlOpenLibdl(string fileName, int flags);

    [LibraryImport("libc", EntryPoint = "dlerror")]
    private static partial IntPtr DlErrorLibc();

    [LibraryImport("libdl.so.2", EntryPoint = "dlerror")]
    private static partial IntPtr DlErrorLibdl();
}

using System.Buffers.Binary;
using System.Text;

namespace Osprey.Interop;

/// <summary>
/// The restricted class map of Osprey's pickle reader: which globals (<c>module.name</c>) a pickle may name. Every global
/// in the stream is checked here before anything is unpickled (<see cref="Check"/> walks the opcodes), so a file naming
/// anything else is refused whole, with the global in the message; nothing pickled is ever run (Razorvine only builds
/// .NET data, and the known globals below map to Osprey's constructors in <see cref="TorchUnpickler"/>).
/// <list type="bullet">
/// <item>data globals: torch's tensor and parameter rebuilders, storage types, <c>collections.OrderedDict</c>,
/// <c>builtins.set</c>, <c>torch.Size</c>, <c>torch.device</c>, numpy scalars and dtypes, <c>pathlib</c> paths;</item>
/// <item>module classes (a name starting with a capital letter, or a version and one: <c>v10Detect</c>, <c>v8DetectionLoss</c>) under <c>ultralytics.</c> and <c>torch.nn.modules.</c>, and
/// <c>types.SimpleNamespace</c>: built as plain data objects holding their <c>__dict__</c> (Razorvine's ClassDict), and only
/// without constructor arguments (<c>NEWOBJ</c> with an empty tuple, as torch.save pickles a module).</item>
/// </list>
/// </summary>
public static class PickleGlobals
{
    /// <summary>Globals that map to a constructor or marker of <see cref="TorchUnpickler"/>.</summary>
    public static readonly IReadOnlySet<string> Data = new HashSet<string>(StringComparer.Ordinal)
    {
        "torch._utils._rebuild_tensor", "torch._utils._rebuild_tensor_v2", "torch._utils._rebuild_parameter",
        "torch._utils._rebuild_parameter_with_state", "torch._tensor._rebuild_from_type_v2", "torch.Tensor",
        "torch.nn.parameter.Parameter", "collections.OrderedDict", "builtins.set", "builtins.frozenset", "__builtin__.set",
        "__builtin__.frozenset", "_codecs.encode", "torch.Size",
        "torch.device", "numpy.core.multiarray.scalar", "numpy._core.multiarray.scalar", "numpy.dtype",
        "pathlib.PosixPath", "pathlib.WindowsPath", "pathlib.Path", "types.SimpleNamespace",
        "torch.DoubleStorage", "torch.FloatStorage", "torch.HalfStorage", "torch.BFloat16Storage", "torch.LongStorage",
        "torch.IntStorage", "torch.ShortStorage", "torch.CharStorage", "torch.ByteStorage", "torch.BoolStorage",
    };

    private static readonly string[] ModuleClassPrefixes = { "ultralytics.", "torch.nn.modules." };

    // Ultralytics' classes named after a version, which start with a small v: YOLOv10's head v10Detect, and the losses
    // (v8DetectionLoss, v10DetectLoss) a trainer's model keeps as its criterion.
    private static readonly System.Text.RegularExpressions.Regex VersionedClass = new(@"^v[0-9]+[A-Z][A-Za-z0-9_]*$");

    private static bool IsVersionedClass(string name) => VersionedClass.IsMatch(name);

    /// <summary>Whether <paramref name="global"/> (<c>module.name</c>) may appear in a pickle Osprey reads.</summary>
    public static bool IsAllowed(string module, string name)
    {
        string global = module + "." + name;
        if (Data.Contains(global)) return true;
        return name.Length > 0 && (char.IsUpper(name[0]) || IsVersionedClass(name)) && !name.Contains('.')
            && ModuleClassPrefixes.Any(p => global.StartsWith(p, StringComparison.Ordinal));
    }

    /// <summary>
    /// Walks the pickle's opcodes and throws if one names a global outside the map (<c>GLOBAL</c>, <c>INST</c>, or
    /// <c>STACK_GLOBAL</c> whose module and name are not plain strings pushed just before), or uses the extension registry.
    /// </summary>
    /// <exception cref="InvalidDataException">Names <paramref name="source"/> and the refused global.</exception>
    public static void Check(ReadOnlySpan<byte> pickle, string source)
    {
        try
        {
            Walk(pickle, source);
        }
        catch (Exception e) when (e is ArgumentOutOfRangeException or IndexOutOfRangeException or FormatException or OverflowException)
        {
            throw new InvalidDataException($"{source}: truncated or malformed pickle ({e.Message}).", e);
        }
    }

    private static void Walk(ReadOnlySpan<byte> pickle, string source)
    {
        var strings = new StringTracker();
        int at = 0;
        while (at < pickle.Length)
        {
            byte op = pickle[at++];
            switch (op)
            {
                case (byte)'.': return;                                                   // STOP
                case (byte)'c' or (byte)'i':                                              // GLOBAL, INST
                    string module = Line(pickle, ref at), name = Line(pickle, ref at);
                    Require(module, name, source);
                    strings.Push(null);
                    break;
                case 0x93:                                                                // STACK_GLOBAL
                    var (stackModule, stackName) = strings.LastTwo();
                    if (stackModule is null || stackName is null)
                        throw new InvalidDataException($"{source}: refused pickle: STACK_GLOBAL whose module and name are not plain strings.");
                    Require(stackModule, stackName, source);
                    strings.Push(null);
                    break;
                case 0x82 or 0x83 or 0x84:                                                // EXT1/2/4
                    throw new InvalidDataException($"{source}: refused pickle: extension-registry globals (EXT opcodes) are not read.");
                default:
                    Skip(op, pickle, ref at, strings, source);
                    break;
            }
        }
        throw new InvalidDataException($"{source}: truncated pickle (no STOP opcode).");
    }

    private static void Require(string module, string name, string source)
    {
        if (!IsAllowed(module, name))
            throw new InvalidDataException($"{source}: refused pickle: it names the global '{module}.{name}', which is not a " +
                "tensor, container or module class Osprey reads; pickled code is never run.");
    }

    // Moves past one opcode's argument, noting the strings pushed (for STACK_GLOBAL) and the memo.
    private static void Skip(byte op, ReadOnlySpan<byte> pickle, ref int at, StringTracker strings, string source)
    {
        switch (op)
        {
            case (byte)'X': strings.Push(Utf8(pickle, ref at, (int)U32(pickle, ref at))); return;           // BINUNICODE
            case 0x8c: strings.Push(Utf8(pickle, ref at, pickle[at++])); return;                          // SHORT_BINUNICODE
            case 0x8d: strings.Push(Utf8(pickle, ref at, checked((int)U64(pickle, ref at)))); return;      // BINUNICODE8
            case (byte)'V' or (byte)'S': strings.Push(Line(pickle, ref at)); return;                       // UNICODE, STRING
            case (byte)'T': strings.Push(Utf8(pickle, ref at, (int)U32(pickle, ref at))); return;          // BINSTRING
            case (byte)'U': strings.Push(Utf8(pickle, ref at, pickle[at++])); return;                      // SHORT_BINSTRING
            case (byte)'q': strings.Put(pickle[at++]); return;                                             // BINPUT
            case (byte)'r': strings.Put((int)U32(pickle, ref at)); return;                                 // LONG_BINPUT
            case (byte)'p': strings.Put(int.Parse(Line(pickle, ref at))); return;                          // PUT
            case 0x94: strings.Memoize(); return;                                                          // MEMOIZE
            case (byte)'h': strings.Get(pickle[at++]); return;                                             // BINGET
            case (byte)'j': strings.Get((int)U32(pickle, ref at)); return;                                 // LONG_BINGET
            case (byte)'g': strings.Get(int.Parse(Line(pickle, ref at))); return;                          // GET
        }
        strings.Push(null);
        int length = op switch
        {
            (byte)'J' => 4, (byte)'K' => 1, (byte)'M' => 2, (byte)'G' or 0x95 => 8, 0x80 => 1,   // BININT…, FRAME, PROTO
            (byte)'B' => checked((int)U32(pickle, ref at)), (byte)'C' => pickle[at++],                      // BINBYTES, SHORT_BINBYTES
            0x8e or 0x96 => checked((int)U64(pickle, ref at)),                                              // BINBYTES8, BYTEARRAY8
            0x8a => pickle[at++], 0x8b => checked((int)U32(pickle, ref at)),                                // LONG1, LONG4
            (byte)'F' or (byte)'I' or (byte)'L' or (byte)'P' => -1,                                         // text-line arguments
            _ when NoArgument.Contains(op) => 0,
            _ => throw new InvalidDataException($"{source}: not a pickle Osprey reads (opcode 0x{op:x2} at byte {at - 1})."),
        };
        if (length < 0) Line(pickle, ref at);
        else at += length;
        if (at > pickle.Length) throw new InvalidDataException($"{source}: truncated pickle.");
    }

    // MARK POP POP_MARK DUP NONE REDUCE APPEND BUILD DICT EMPTY_DICT APPENDS LIST EMPTY_LIST OBJ SETITEM TUPLE EMPTY_TUPLE
    // SETITEMS BINPERSID NEWOBJ TUPLE1-3 NEWTRUE NEWFALSE EMPTY_SET ADDITEMS FROZENSET NEWOBJ_EX NEXT_BUFFER READONLY_BUFFER
    private static readonly HashSet<byte> NoArgument = new("(012NRabd}el]ostu)Q"u8.ToArray()
        .Concat(new byte[] { 0x81, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8f, 0x90, 0x91, 0x92, 0x97, 0x98 }));

    private static string Line(ReadOnlySpan<byte> pickle, ref int at)
    {
        int end = pickle[at..].IndexOf((byte)'\n');
        if (end < 0) throw new InvalidDataException("truncated pickle (a text argument without its newline).");
        string text = Encoding.UTF8.GetString(pickle.Slice(at, end));
        at += end + 1;
        return text;
    }

    private static string Utf8(ReadOnlySpan<byte> pickle, ref int at, int length)
    {
        string text = Encoding.UTF8.GetString(pickle.Slice(at, length));
        at += length;
        return text;
    }

    private static uint U32(ReadOnlySpan<byte> pickle, ref int at)
    {
        uint value = BinaryPrimitives.ReadUInt32LittleEndian(pickle.Slice(at, 4));
        at += 4;
        return value;
    }

    private static ulong U64(ReadOnlySpan<byte> pickle, ref int at)
    {
        ulong value = BinaryPrimitives.ReadUInt64LittleEndian(pickle.Slice(at, 8));
        at += 8;
        return value;
    }

    // The last two values pushed, when they were strings (a STACK_GLOBAL's module and name), and the memo of strings.
    private sealed class StringTracker
    {
        private string? _last, _beforeLast;
        private readonly Dictionary<int, string?> _memo = new();

        public void Push(string? value) => (_beforeLast, _last) = (_last, value);
        public (string? Module, string? Name) LastTwo() => (_beforeLast, _last);
        public void Put(int index) => _memo[index] = _last;
        public void Memoize() => _memo[_memo.Count] = _last;
        public void Get(int index) => Push(_memo.GetValueOrDefault(index));
    }
}

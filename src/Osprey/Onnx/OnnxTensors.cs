using Google.Protobuf;
using Onnx;
using static TorchSharp.torch;

namespace Osprey.Onnx;

/// <summary>ONNX <c>TensorProto</c> ↔ TorchSharp tensors (the element types a YOLO export uses).</summary>
public static class OnnxTensors
{
    /// <summary>ONNX TensorProto.DataType codes.</summary>
    public static class DataType
    {
        public const int Float = 1, Uint8 = 2, Int8 = 3, Int16 = 5, Int32 = 6, Int64 = 7, Float16 = 10, Double = 11;
    }

    /// <summary>The values of <paramref name="proto"/> as a float32 CPU tensor of its shape (integers converted exactly).</summary>
    public static Tensor ToFloat(TensorProto proto)
    {
        if (proto.DataLocation == TensorProto.Types.DataLocation.External)
            throw new InvalidDataException($"initializer '{proto.Name}': external data is not supported.");
        long[] dims = proto.Dims.ToArray();
        long count = dims.Aggregate(1L, (a, b) => a * b);
        var values = new float[count];
        var raw = proto.RawData.Span;
        bool hasRaw = !proto.RawData.IsEmpty;
        switch (proto.DataType)
        {
            case DataType.Float:
                if (hasRaw) Copy(raw, values, 4, (s, i) => BitConverter.ToSingle(s.Slice(i * 4, 4)));
                else proto.FloatData.CopyTo(values, 0);
                break;
            case DataType.Double:
                if (hasRaw) Copy(raw, values, 8, (s, i) => (float)BitConverter.ToDouble(s.Slice(i * 8, 8)));
                else for (int i = 0; i < count; i++) values[i] = (float)proto.DoubleData[i];
                break;
            case DataType.Float16:
                if (hasRaw) Copy(raw, values, 2, (s, i) => (float)BitConverter.ToHalf(s.Slice(i * 2, 2)));
                else for (int i = 0; i < count; i++) values[i] = (float)BitConverter.UInt16BitsToHalf((ushort)proto.Int32Data[i]);
                break;
            case DataType.Uint8:
                if (hasRaw) Copy(raw, values, 1, (s, i) => s[i]);
                else for (int i = 0; i < count; i++) values[i] = proto.Int32Data[i];
                break;
            case DataType.Int8:
                if (hasRaw) Copy(raw, values, 1, (s, i) => (sbyte)s[i]);
                else for (int i = 0; i < count; i++) values[i] = proto.Int32Data[i];
                break;
            case DataType.Int16:
                if (hasRaw) Copy(raw, values, 2, (s, i) => BitConverter.ToInt16(s.Slice(i * 2, 2)));
                else for (int i = 0; i < count; i++) values[i] = proto.Int32Data[i];
                break;
            case DataType.Int32:
                if (hasRaw) Copy(raw, values, 4, (s, i) => BitConverter.ToInt32(s.Slice(i * 4, 4)));
                else for (int i = 0; i < count; i++) values[i] = proto.Int32Data[i];
                break;
            case DataType.Int64:
                if (hasRaw) Copy(raw, values, 8, (s, i) => BitConverter.ToInt64(s.Slice(i * 8, 8)));
                else for (int i = 0; i < count; i++) values[i] = proto.Int64Data[i];
                break;
            default:
                throw new InvalidDataException($"initializer '{proto.Name}': ONNX data type {proto.DataType} is not supported.");
        }
        return tensor(values).reshape(dims);
    }

    /// <summary>The integer values of an int64/int32 initializer (shapes, axes).</summary>
    public static long[] ToInt64(TensorProto proto)
    {
        if (proto.DataType == DataType.Int64)
        {
            if (proto.RawData.IsEmpty) return proto.Int64Data.ToArray();
            var raw = proto.RawData.ToByteArray();
            return Enumerable.Range(0, raw.Length / 8).Select(i => BitConverter.ToInt64(raw, i * 8)).ToArray();
        }
        using var values = ToFloat(proto);
        return values.to_type(ScalarType.Int64).data<long>().ToArray();
    }

    /// <summary>A float32 initializer from a tensor (copied to the CPU).</summary>
    public static TensorProto FromFloat(string name, Tensor values)
    {
        using var cpu = values.detach().to(CPU).to_type(ScalarType.Float32).contiguous();
        var data = cpu.data<float>().ToArray();
        var bytes = new byte[data.Length * 4];
        Buffer.BlockCopy(data, 0, bytes, 0, bytes.Length);
        var proto = new TensorProto { Name = name, DataType = DataType.Float, RawData = ByteString.CopyFrom(bytes) };
        proto.Dims.AddRange(cpu.shape);
        return proto;
    }

    /// <summary>A float16 initializer from a tensor.</summary>
    public static TensorProto FromHalf(string name, Tensor values)
    {
        using var cpu = values.detach().to(CPU).to_type(ScalarType.Float32).contiguous();
        var data = cpu.data<float>().ToArray();
        var bytes = new byte[data.Length * 2];
        for (int i = 0; i < data.Length; i++)
            BitConverter.TryWriteBytes(bytes.AsSpan(i * 2, 2), (Half)data[i]);
        var proto = new TensorProto { Name = name, DataType = DataType.Float16, RawData = ByteString.CopyFrom(bytes) };
        proto.Dims.AddRange(cpu.shape);
        return proto;
    }

    /// <summary>An int64 initializer.</summary>
    public static TensorProto FromInt64(string name, long[] values, long[]? dims = null)
    {
        var bytes = new byte[values.Length * 8];
        Buffer.BlockCopy(values, 0, bytes, 0, bytes.Length);
        var proto = new TensorProto { Name = name, DataType = DataType.Int64, RawData = ByteString.CopyFrom(bytes) };
        proto.Dims.AddRange(dims ?? new long[] { values.Length });
        return proto;
    }

    private static void Copy(ReadOnlySpan<byte> raw, float[] values, int size, SpanReader read)
    {
        if (raw.Length != values.Length * size)
            throw new InvalidDataException($"raw data holds {raw.Length} bytes, expected {values.Length * size}.");
        for (int i = 0; i < values.Length; i++) values[i] = read(raw, i);
    }

    private delegate float SpanReader(ReadOnlySpan<byte> span, int index);
}

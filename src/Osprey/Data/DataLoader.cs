using System.Collections.Concurrent;
using System.Runtime.InteropServices;
using OpenCvSharp;
using TorchSharp;
using static TorchSharp.torch;

namespace Osprey.Data;

/// <summary>
/// Parallel, bounded-prefetch loader: <see cref="LoaderOptions.Workers"/> threads decode and augment samples in the order
/// the sampler gives, batches come out in order, collated into contiguous tensors. A sample depends only on
/// (seed, epoch, index), never on the number of workers, ranks or the batch size.
/// </summary>
public sealed class DataLoader : IDisposable
{
    private readonly ConcurrentBag<byte[]> _buffers = new();
    private readonly IImageStore _store;
    private volatile string? _pinError;

    /// <summary>The dataset.</summary>
    public DetectionDataset Dataset { get; }

    /// <summary>The options.</summary>
    public LoaderOptions Options { get; }

    /// <summary>Per-sample processing.</summary>
    public SamplePipeline Pipeline { get; }

    /// <summary>Which indices this rank visits.</summary>
    public ISampler Sampler { get; }

    /// <summary>True for a training loader (augmenting, shuffling, padded across ranks).</summary>
    public bool Training { get; }

    /// <summary>Batches per epoch on this rank: for training the global batches, the same on every rank (the last may be
    /// empty on some ranks, <see cref="DistributedSampler"/>).</summary>
    public int BatchesPerEpoch => Options.DropLast ? Sampler.Count / Options.BatchSize
        : Sampler is DistributedSampler global ? global.Batches(Options.BatchSize)
        : (Sampler.Count + Options.BatchSize - 1) / Options.BatchSize;

    private DataLoader(DetectionDataset dataset, LoaderOptions options, bool training)
    {
        if (options.BatchSize <= 0) throw new ArgumentOutOfRangeException(nameof(options), "BatchSize must be positive.");
        Dataset = dataset;
        Options = options;
        Training = training;
        if (options.SingleThreadedOpenCv) Cv2.SetNumThreads(1);
        var threads = Math.Max(1, options.Workers);
        var window = training ? Math.Min(dataset.Count, Math.Max(0, options.MosaicBuffer)) : 0;
        _store = options.Cache switch
        {
            ImageCacheMode.Ram => new RamImageStore(dataset.Images, options.ImageSize, training, threads),
            ImageCacheMode.Disk => new DiskImageStore(dataset.Images, options.ImageSize, training, threads, options.CacheDirectory),
            // the images of the window's positions (partners are drawn among them), and of the samples in flight on other workers
            _ when window > 0 => new RecentImageStore(new FileImageStore(dataset.Images, options.ImageSize, training), window + 2 * threads),
            _ => new FileImageStore(dataset.Images, options.ImageSize, training),
        };
        Pipeline = new SamplePipeline(dataset.Images, _store, options.ImageSize, training ? options.Augment ?? AugmentOptions.Default : null, options.Seed)
        {
            PartnerWindow = window,
        };
        Sampler = training
            ? new DistributedSampler(dataset.Count, options.Rank, options.WorldSize, shuffle: true, options.Seed)
            : new ValidationSampler(dataset.Count, options.Rank, options.WorldSize);
    }

    /// <summary>True when the batches carry tiles and plans for <see cref="Osprey.Data.DeviceAugment"/> (<see cref="LoaderOptions.DeviceAugment"/>, training).</summary>
    public bool AugmentsOnDevice => Training && Options.DeviceAugment;

    /// <summary>Bytes a worker writes per sample: the RGB planes, or the tile slots on the device path.</summary>
    private int SampleBytes => AugmentsOnDevice ? TilePlan.Slots * TilePlan.SlotBytes(Options.ImageSize) : Pipeline.ImageBytes;

    /// <summary>True while batches are collated into pinned memory (<see cref="LoaderOptions.PinMemory"/> and pinning works here).</summary>
    public bool PinsMemory => Options.PinMemory && _pinError is null;

    /// <summary>Why pinning was given up (the first failure), or null.</summary>
    public string? PinMemoryError => _pinError;

    /// <summary>Images decoded from files so far (cache=false with the mosaic buffer), or null.</summary>
    public long? Decoded => (_store as RecentImageStore)?.Decoded;

    /// <summary>A training loader: augmentation, shuffle from (seed, epoch), equal padded share per rank.</summary>
    public static DataLoader ForTraining(DetectionDataset dataset, LoaderOptions options) => new(dataset, options, training: true);

    /// <summary>A validation loader: letterbox only, dataset order, each sample exactly once across ranks.</summary>
    public static DataLoader ForValidation(DetectionDataset dataset, LoaderOptions options) => new(dataset, options, training: false);

    /// <summary>The batches of <paramref name="epoch"/> (0-based), produced ahead on the worker threads. Dispose each batch.</summary>
    public IEnumerable<Batch> Epoch(int epoch, CancellationToken cancellationToken = default)
    {
        var indices = Sampler.Indices(epoch);
        var batchSize = Options.BatchSize;
        var batchCount = BatchesPerEpoch;
        if (batchCount == 0) yield break;
        var mosaic = Training && Pipeline.Augment!.MosaicActive(epoch, Options.Epochs);
        var prefetch = Options.PrefetchBatches > 0 ? Options.PrefetchBatches : Math.Max(2, 2 * Options.Workers);

        using var cancel = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        using var work = new BlockingCollection<(PendingBatch Batch, int Position)>();
        var workers = Enumerable.Range(0, Math.Max(1, Options.Workers)).Select(w => new Thread(() => Work(work, epoch, mosaic, cancel.Token))
        {
            IsBackground = true,
            Name = $"osprey-data-{w}",
        }).ToList();
        workers.ForEach(t => t.Start());
        var pending = new Queue<PendingBatch>();
        var next = 0;
        void Enqueue()
        {
            var start = next * batchSize;
            var count = Math.Clamp(indices.Count - start, 0, batchSize);   // 0: this rank's share of the last global batch is empty
            var batch = new PendingBatch(next, indices.Skip(start).Take(count).ToArray(), Rent(count * SampleBytes));
            pending.Enqueue(batch);
            for (var p = 0; p < count; p++) work.Add((batch, p));
            next++;
        }
        try
        {
            while (next < batchCount && pending.Count < prefetch) Enqueue();
            while (pending.Count > 0)
            {
                var batch = pending.Dequeue();
                batch.Done.Wait(cancel.Token);
                if (batch.Error is not null) throw new InvalidOperationException($"Data loading failed in epoch {epoch}: {batch.Error.Message}", batch.Error);
                var collated = Collate(batch, epoch);
                Return(batch.Buffer);
                if (next < batchCount) Enqueue();
                yield return collated;
            }
        }
        finally
        {
            work.CompleteAdding();
            cancel.Cancel();
            foreach (var t in workers) t.Join();
        }
    }

    private void Work(BlockingCollection<(PendingBatch Batch, int Position)> work, int epoch, bool mosaic, CancellationToken token)
    {
        try
        {
            foreach (var (batch, position) in work.GetConsumingEnumerable(token))
            {
                try
                {
                    if (batch.Error is null)
                    {
                        if (Options.SampleDelay > TimeSpan.Zero) Thread.Sleep(Options.SampleDelay);
                        var destination = Marshal.UnsafeAddrOfPinnedArrayElement(batch.Buffer, position * SampleBytes);
                        if (AugmentsOnDevice)
                        {
                            var plan = new TilePlan();
                            batch.Samples[position] = Pipeline.ProcessTiles(batch.Indices[position], epoch, mosaic, destination, plan);
                            batch.Plans[position] = plan;
                        }
                        else
                        {
                            batch.Samples[position] = Pipeline.Process(batch.Indices[position], epoch, mosaic, destination);
                        }
                    }
                }
                catch (Exception e)
                {
                    batch.Error ??= e;
                }
                finally
                {
                    batch.Done.Signal();
                }
            }
        }
        catch (OperationCanceledException)
        {
            // loader closed early
        }
    }

    // Samples of global batch `number` over all ranks (training), or 0 when unknown (validation).
    private int GlobalSize(int number) => Sampler is DistributedSampler global ? global.GlobalBatchSize(Options.BatchSize, number) : 0;

    private Batch Collate(PendingBatch pending, int epoch)
    {
        var b = pending.Indices.Length;
        var s = Options.ImageSize;
        var total = pending.Samples.Sum(x => x!.Classes.Length);
        var batchIndex = new long[total];
        var classes = new float[total];
        var boxes = new float[total * 4];
        var n = 0;
        for (var i = 0; i < b; i++)
        {
            var sample = pending.Samples[i]!;
            for (var k = 0; k < sample.Classes.Length; k++, n++)
            {
                batchIndex[n] = i;
                classes[n] = sample.Classes[k];
            }
            sample.Boxes.CopyTo(boxes, (n - sample.Classes.Length) * 4);
        }
        var labels = new[] { tensor(batchIndex), tensor(classes), tensor(boxes, [total, 4]) };
        var infos = pending.Samples.Select(x => x!.Info).ToArray();
        if (!AugmentsOnDevice)
        {
            var images = empty([b, 3, s, s], ScalarType.Byte);
            pending.Buffer.AsSpan(0, b * Pipeline.ImageBytes).CopyTo(images.bytes);
            Tensor[] tensors = [images, .. labels];
            if (PinsMemory) Pin(tensors);
            return new Batch(tensors[0], tensors[1], tensors[2], tensors[3], infos, epoch, pending.Number) { GlobalSize = GlobalSize(pending.Number) };
        }
        var (tiles, tileIndex) = CollateTiles(pending);
        var parameters = new float[b * TilePlan.Floats];
        var tables = new byte[b * TilePlan.TableBytes];
        for (var i = 0; i < b; i++)
        {
            pending.Plans[i]!.Parameters.CopyTo(parameters, i * TilePlan.Floats);
            pending.Plans[i]!.Tables.CopyTo(tables, i * TilePlan.TableBytes);
        }
        Tensor[] all = [tiles, .. labels, tensor(tileIndex), tensor(parameters, [b, TilePlan.Floats]), tensor(tables, [b, TilePlan.TableBytes])];
        if (PinsMemory) Pin(all);
        var slotsInUse = Enumerable.Range(0, TilePlan.Slots).Select(k => pending.Plans.Any(p => p!.IsUsed(k))).ToArray();
        return new Batch(new TileBatch(all[0], all[4], all[5], all[6], s, slotsInUse), all[1], all[2], all[3], infos, epoch, pending.Number)
        {
            GlobalSize = GlobalSize(pending.Number),
        };
    }

    // the used slots of the batch's samples, one after the other: uint8 (T, S, S, 3) BGR, and the tile of each (sample,
    // slot) in that order (an unused slot points at tile 0: its plan says unused)
    private (Tensor Tiles, long[] Index) CollateTiles(PendingBatch pending)
    {
        var s = Options.ImageSize;
        var slotBytes = TilePlan.SlotBytes(s);
        var index = new long[pending.Plans.Length * TilePlan.Slots];
        var count = 0;
        for (var i = 0; i < pending.Plans.Length; i++)
            for (var k = 0; k < TilePlan.Slots; k++)
                index[i * TilePlan.Slots + k] = pending.Plans[i]!.IsUsed(k) ? count++ : 0;
        var tiles = empty([count, s, s, 3], ScalarType.Byte);
        var target = tiles.bytes;
        for (var j = 0; j < index.Length; j++)
            if (pending.Plans[j / TilePlan.Slots]!.IsUsed(j % TilePlan.Slots))
                pending.Buffer.AsSpan(j * slotBytes, slotBytes).CopyTo(target[(int)(index[j] * slotBytes)..]);
        return (tiles, index);
    }

    // Replaces the tensors by pinned copies (libtorch's caching host allocator reuses the blocks once their copies are
    // done); on failure keeps the ordinary ones and stops trying.
    private void Pin(Tensor[] tensors)
    {
        var pinned = new Tensor?[tensors.Length];
        try
        {
            for (var i = 0; i < tensors.Length; i++) pinned[i] = tensors[i].pin_memory();
        }
        catch (Exception e) when (e is ExternalException or InvalidOperationException or NotSupportedException)
        {
            _pinError ??= $"pin_memory failed, using ordinary host memory: {e.Message.Split('\n')[0]}";
            foreach (var p in pinned) p?.Dispose();
            return;
        }
        for (var i = 0; i < tensors.Length; i++)
        {
            tensors[i].Dispose();
            tensors[i] = pinned[i]!;
        }
    }

    private byte[] Rent(int length)
    {
        while (_buffers.TryTake(out var buffer))
            if (buffer.Length == length) return buffer;
        return GC.AllocateUninitializedArray<byte>(length, pinned: true);
    }

    private void Return(byte[] buffer)
    {
        if (_buffers.Count < 16) _buffers.Add(buffer);
    }

    /// <inheritdoc/>
    public void Dispose() => _store.Dispose();

    private sealed class PendingBatch(int number, int[] indices, byte[] buffer)
    {
        public int Number { get; } = number;
        public int[] Indices { get; } = indices;
        public byte[] Buffer { get; } = buffer;
        public ProcessedSample?[] Samples { get; } = new ProcessedSample?[indices.Length];
        public TilePlan?[] Plans { get; } = new TilePlan?[indices.Length];
        public CountdownEvent Done { get; } = new(indices.Length);
        public volatile Exception? Error;
    }
}

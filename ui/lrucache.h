#pragma once
// A least-recently-used cache capped in bytes (the viewer's tile texture cache). Plain C++, not
// synchronised: use it from one thread (the GUI thread for GL textures).
//
// Every entry has a byte cost given at insert(). Inserting evicts least-recently-used entries until the
// total fits the capacity; evicted values are handed to the evictor (which frees GL textures). Pinned
// entries (the coarsest pyramid level, kept resident) count towards bytes() but are never evicted, so
// bytes() may exceed capacity() only by pinned entries. find() counts a hit or a miss and makes the
// entry most recent; peek() does neither.
#include <cstddef>
#include <cstdint>
#include <functional>
#include <list>
#include <unordered_map>
#include <utility>
#include <vector>

namespace nic {

template <class Key, class Value, class Hash = std::hash<Key>>
class LruCache {
public:
    using Evictor = std::function<void(const Key&, Value&)>;

    explicit LruCache(std::size_t capacityBytes, Evictor evictor = {})
        : capacity_(capacityBytes), evictor_(std::move(evictor)) {}
    ~LruCache() { clear(); }
    LruCache(const LruCache&) = delete;
    LruCache& operator=(const LruCache&) = delete;

    /// The entry for `key` (made most recent), or nullptr. Counts a hit or a miss.
    Value* find(const Key& key) {
        auto it = index_.find(key);
        if (it == index_.end()) {
            ++misses_;
            return nullptr;
        }
        ++hits_;
        entries_.splice(entries_.begin(), entries_, it->second);
        return &it->second->value;
    }

    /// The entry for `key` without touching recency or statistics, or nullptr.
    const Value* peek(const Key& key) const {
        auto it = index_.find(key);
        return it == index_.end() ? nullptr : &it->second->value;
    }
    bool contains(const Key& key) const { return index_.count(key) != 0; }

    /// Inserts (or replaces) `key` as the most recent entry, then evicts down to the capacity.
    /// The new entry itself is never evicted by its own insertion.
    void insert(const Key& key, Value value, std::size_t bytes, bool pinned = false) {
        erase(key);
        entries_.push_front(Entry{key, std::move(value), bytes, pinned});
        index_[key] = entries_.begin();
        bytes_ += bytes;
        evictDownTo(capacity_, &entries_.front());
    }

    /// Removes `key` (calling the evictor). Returns false if absent.
    bool erase(const Key& key) {
        auto it = index_.find(key);
        if (it == index_.end())
            return false;
        removeEntry(it->second);
        return true;
    }

    /// Removes everything, pinned entries included (calling the evictor for each).
    void clear() {
        while (!entries_.empty())
            removeEntry(std::prev(entries_.end()));
    }

    void setCapacity(std::size_t bytes) {
        capacity_ = bytes;
        evictDownTo(capacity_, nullptr);
    }

    std::size_t capacity() const { return capacity_; }
    std::size_t bytes() const { return bytes_; }
    std::size_t size() const { return entries_.size(); }
    std::uint64_t hits() const { return hits_; }
    std::uint64_t misses() const { return misses_; }
    std::uint64_t evictions() const { return evictions_; }
    void resetStatistics() { hits_ = misses_ = evictions_ = 0; }

    /// Keys from most to least recently used (for tests and diagnostics).
    std::vector<Key> keysByRecency() const {
        std::vector<Key> keys;
        keys.reserve(entries_.size());
        for (const auto& e : entries_)
            keys.push_back(e.key);
        return keys;
    }

private:
    struct Entry {
        Key key;
        Value value;
        std::size_t bytes;
        bool pinned;
    };
    using Iter = typename std::list<Entry>::iterator;

    void removeEntry(Iter it) {
        bytes_ -= it->bytes;
        if (evictor_)
            evictor_(it->key, it->value);
        index_.erase(it->key);
        entries_.erase(it);
    }

    void evictDownTo(std::size_t cap, const Entry* keep) {
        auto it = entries_.end();
        while (bytes_ > cap && it != entries_.begin()) {
            --it;
            if (it->pinned || &*it == keep)
                continue;
            auto victim = it++;
            removeEntry(victim);
            ++evictions_;
        }
    }

    std::size_t capacity_;
    std::size_t bytes_ = 0;
    Evictor evictor_;
    std::list<Entry> entries_; // most recent first
    std::unordered_map<Key, Iter, Hash> index_;
    std::uint64_t hits_ = 0;
    std::uint64_t misses_ = 0;
    std::uint64_t evictions_ = 0;
};

} // namespace nic
